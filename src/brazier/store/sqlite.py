"""The SQLite metadata store: the single-node default.

Plain ``sqlite3`` on the event loop thread, not a thread pool or an async driver: every statement
here touches a handful of indexed rows and takes microseconds, which is less than the cost of a
thread hop (see docs/decisions/0002-store.md). WAL mode with ``synchronous=NORMAL`` keeps every
committed transaction across a crash or ``kill -9`` of the server (only a power cut can lose the
last transactions), and lets readers run beside a writer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from brazier.model.arns import LATEST
from brazier.model.functions import FunctionVersion
from brazier.store.base import StoreClosed, Usage
from brazier.store.codec import dump_config, dump_lifecycle, row_to_version
from brazier.store.sqlite_more import SCHEMA as MORE_SCHEMA
from brazier.store.sqlite_more import VersionsAndAliases

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS functions (
    id          INTEGER PRIMARY KEY,
    account     TEXT NOT NULL,
    region      TEXT NOT NULL,
    name        TEXT NOT NULL,
    tags        TEXT NOT NULL DEFAULT '{}',
    next_version INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account, region, name)
);
CREATE TABLE IF NOT EXISTS versions (
    function_id   INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    version       TEXT NOT NULL,
    vorder        INTEGER NOT NULL,
    config        TEXT NOT NULL,
    code_sha      TEXT NOT NULL,
    code_size     INTEGER NOT NULL,
    revision_id   TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    lifecycle     TEXT NOT NULL,
    busy          INTEGER NOT NULL,
    PRIMARY KEY (function_id, version)
);
CREATE TABLE IF NOT EXISTS policies (
    function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    qualifier   TEXT NOT NULL,
    statements  TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    PRIMARY KEY (function_id, qualifier)
);
CREATE INDEX IF NOT EXISTS versions_busy ON versions(busy) WHERE busy = 1;
"""

_SELECT_VERSION = """
SELECT f.account, f.region, f.name, v.version, v.config, v.revision_id, v.last_modified,
       v.lifecycle
FROM versions v JOIN functions f ON f.id = v.function_id
"""


def _vorder(version: str) -> int:
    return 0 if version == LATEST else int(version)


class SqliteStore(VersionsAndAliases):
    """``MetadataStore`` over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._db: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._generation = 0
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        db.executescript(MORE_SCHEMA)
        current = db.execute("PRAGMA user_version").fetchone()[0]
        if current == 0:
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif current != SCHEMA_VERSION:
            raise RuntimeError(f"store schema {current} is not {SCHEMA_VERSION}; migrate first")

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreClosed("the metadata store is closed")
        return self._db

    @property
    def generation(self) -> int:
        # Only this process writes the file (single node), so counting its commits suffices.
        return self._generation

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._generation += 1

    def _function_id(self, account: str, region: str, name: str) -> int | None:
        row = self.db.execute(
            "SELECT id FROM functions WHERE account=? AND region=? AND name=?",
            (account, region, name),
        ).fetchone()
        return None if row is None else int(row[0])

    async def create_function(self, fv: FunctionVersion, tags: Mapping[str, str]) -> bool:
        with self._tx() as db:
            try:
                cur = db.execute(
                    "INSERT INTO functions(account, region, name, tags) VALUES (?,?,?,?)",
                    (fv.account, fv.region, fv.name, json.dumps(dict(tags))),
                )
            except sqlite3.IntegrityError:
                return False
            self._insert_version(db, int(cur.lastrowid or 0), fv)
        return True

    @staticmethod
    def _insert_version(db: sqlite3.Connection, fid: int, fv: FunctionVersion) -> None:
        db.execute(
            "INSERT INTO versions(function_id, version, vorder, config, code_sha, code_size,"
            " revision_id, last_modified, lifecycle, busy) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                fid,
                fv.version,
                _vorder(fv.version),
                dump_config(fv.config),
                fv.config.code.sha256_hex,
                fv.config.code.size,
                fv.revision_id,
                fv.last_modified.isoformat(),
                dump_lifecycle(fv.lifecycle),
                int(fv.lifecycle.busy),
            ),
        )

    async def get_version(
        self, account: str, region: str, name: str, version: str
    ) -> FunctionVersion | None:
        row = self.db.execute(
            _SELECT_VERSION + " WHERE f.account=? AND f.region=? AND f.name=? AND v.version=?",
            (account, region, name, version),
        ).fetchone()
        return None if row is None else row_to_version(*row)

    async def replace_version(self, fv: FunctionVersion, *, expected_revision: str) -> bool:
        with self._tx() as db:
            fid = self._function_id(fv.account, fv.region, fv.name)
            if fid is None:
                return False
            cur = db.execute(
                "UPDATE versions SET config=?, code_sha=?, code_size=?, revision_id=?,"
                " last_modified=?, lifecycle=?, busy=?"
                " WHERE function_id=? AND version=? AND revision_id=?",
                (
                    dump_config(fv.config),
                    fv.config.code.sha256_hex,
                    fv.config.code.size,
                    fv.revision_id,
                    fv.last_modified.isoformat(),
                    dump_lifecycle(fv.lifecycle),
                    int(fv.lifecycle.busy),
                    fid,
                    fv.version,
                    expected_revision,
                ),
            )
            return cur.rowcount == 1

    async def list_versions(
        self, account: str, region: str, *, after: str | None, limit: int, all_versions: bool
    ) -> list[FunctionVersion]:
        where = "f.account=? AND f.region=?"
        args: list[object] = [account, region]
        if not all_versions:
            where += " AND v.version=?"
            args.append(LATEST)
        if after:
            name, _, version = after.partition("\0")
            where += " AND (f.name > ? OR (f.name = ? AND v.vorder > ?))"
            args += [name, name, _vorder(version) if version else -1]
        args.append(limit)
        rows = self.db.execute(
            _SELECT_VERSION + f" WHERE {where} ORDER BY f.name, v.vorder LIMIT ?", args
        ).fetchall()
        return [row_to_version(*r) for r in rows]

    async def list_pending(self) -> list[FunctionVersion]:
        rows = self.db.execute(_SELECT_VERSION + " WHERE v.busy = 1").fetchall()
        return [row_to_version(*r) for r in rows]

    async def delete_function(self, account: str, region: str, name: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM functions WHERE account=? AND region=? AND name=?",
                (account, region, name),
            )
            return cur.rowcount == 1

    async def get_tags(self, account: str, region: str, name: str) -> dict[str, str] | None:
        row = self.db.execute(
            "SELECT tags FROM functions WHERE account=? AND region=? AND name=?",
            (account, region, name),
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    async def set_tags(self, account: str, region: str, name: str, tags: Mapping[str, str]) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE functions SET tags=? WHERE account=? AND region=? AND name=?",
                (json.dumps(dict(tags)), account, region, name),
            )
            return cur.rowcount == 1

    async def get_policy(
        self, account: str, region: str, name: str, qualifier: str
    ) -> tuple[list[dict[str, object]], str] | None:
        row = self.db.execute(
            "SELECT p.statements, p.revision_id FROM policies p JOIN functions f"
            " ON f.id = p.function_id WHERE f.account=? AND f.region=? AND f.name=?"
            " AND p.qualifier=?",
            (account, region, name, qualifier),
        ).fetchone()
        return None if row is None else (list(json.loads(row[0])), str(row[1]))

    async def put_policy(
        self,
        account: str,
        region: str,
        name: str,
        qualifier: str,
        statements: list[dict[str, object]],
        revision_id: str,
        *,
        expected_revision: str | None,
    ) -> bool:
        with self._tx() as db:
            fid = self._function_id(account, region, name)
            if fid is None:
                return False
            row = db.execute(
                "SELECT revision_id FROM policies WHERE function_id=? AND qualifier=?",
                (fid, qualifier),
            ).fetchone()
            if (row[0] if row else None) != expected_revision:
                return False
            if not statements:
                db.execute(
                    "DELETE FROM policies WHERE function_id=? AND qualifier=?", (fid, qualifier)
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO policies(function_id, qualifier, statements,"
                    " revision_id) VALUES (?,?,?,?)",
                    (fid, qualifier, json.dumps(statements), revision_id),
                )
            return True

    async def usage(self, account: str) -> Usage:
        row = self.db.execute(
            "SELECT COUNT(DISTINCT f.id), COALESCE(SUM(v.code_size), 0) FROM functions f"
            " JOIN versions v ON v.function_id = f.id WHERE f.account=?",
            (account,),
        ).fetchone()
        return Usage(function_count=int(row[0]), total_code_size=int(row[1]))

    async def code_in_use(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT code_sha FROM versions")}

    async def layer_arns_in_use(self) -> set[str]:
        rows = self.db.execute(
            "SELECT DISTINCT j.value FROM versions v,"
            " json_each(json_extract(v.config, '$.layers')) j"
        )
        return {str(r[0]) for r in rows}

    async def aclose(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
