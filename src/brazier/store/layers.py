"""Layer versions and their permissions, in the metadata SQLite database.

The tables live beside the functions' (the composition root passes ``SqliteStore.db``) and are
created here with ``CREATE TABLE IF NOT EXISTS``, so they need no schema version bump.

* ``layers`` holds one row per (account, region, name) with the next version number. The row
  outlives its versions, so a number is never reused (Lambda: delete 1 and 2, publish, get 3).
* ``layer_versions`` rows are **soft-deleted**: a deleted version disappears from every query of
  the API but its content stays resolvable through :meth:`SqliteLayerStore.get` with
  ``include_deleted``, because functions that already use it keep working in Lambda.
* Permissions (a list of statements plus a revision id) are per layer version, on its row.

Like ``SqliteStore``: plain ``sqlite3`` on the event loop thread; every method touches a handful
of indexed rows. Writes are single transactions (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from brazier.model.layers import LayerContent, LayerVersion, layer_arn

_SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    id           INTEGER PRIMARY KEY,
    account      TEXT NOT NULL,
    region       TEXT NOT NULL,
    name         TEXT NOT NULL,
    next_version INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account, region, name)
);
CREATE TABLE IF NOT EXISTS layer_versions (
    layer_id      INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    description   TEXT NOT NULL,
    license_info  TEXT,
    runtimes      TEXT,
    architectures TEXT,
    code_sha      TEXT NOT NULL,
    code_sha_b64  TEXT NOT NULL,
    code_size     INTEGER NOT NULL,
    unzipped_size INTEGER NOT NULL,
    created       TEXT NOT NULL,
    semver        TEXT,
    deleted       INTEGER NOT NULL DEFAULT 0,
    statements    TEXT,
    policy_rev    TEXT,
    PRIMARY KEY (layer_id, version)
);
"""

_SELECT = """
SELECT l.account, l.region, l.name, v.version, v.description, v.license_info, v.runtimes,
       v.architectures, v.code_sha, v.code_sha_b64, v.code_size, v.unzipped_size, v.created,
       v.semver
FROM layer_versions v JOIN layers l ON l.id = v.layer_id
"""

Statements = list[dict[str, object]]


def _tuple(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def _row(r: tuple[Any, ...]) -> LayerVersion:
    return LayerVersion(
        account=r[0], region=r[1], name=r[2], version=int(r[3]), description=r[4],
        license_info=r[5], compatible_runtimes=_tuple(r[6]), compatible_architectures=_tuple(r[7]),
        content=LayerContent(sha256_hex=r[8], sha256_b64=r[9], size=r[10], unzipped_size=r[11]),
        created=datetime.fromisoformat(r[12]), semver=r[13],
    )  # fmt: skip


def _json(v: tuple[str, ...] | None) -> str | None:
    return None if v is None else json.dumps(list(v))


class SqliteLayerStore:
    """Layer metadata over a connection opened by ``SqliteStore`` (autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    async def publish(self, lv: LayerVersion) -> LayerVersion:
        """Store ``lv`` under the layer's next version number (``lv.version`` is ignored) and
        return it as stored. Not idempotent: every call makes a new version."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO layers(account, region, name) VALUES (?,?,?)",
                (lv.account, lv.region, lv.name),
            )
            lid, version = db.execute(
                "SELECT id, next_version FROM layers WHERE account=? AND region=? AND name=?",
                (lv.account, lv.region, lv.name),
            ).fetchone()
            db.execute("UPDATE layers SET next_version=? WHERE id=?", (version + 1, lid))
            c = lv.content
            db.execute(
                "INSERT INTO layer_versions(layer_id, version, description, license_info,"
                " runtimes, architectures, code_sha, code_sha_b64, code_size, unzipped_size,"
                " created, semver) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (lid, version, lv.description, lv.license_info, _json(lv.compatible_runtimes),
                 _json(lv.compatible_architectures), c.sha256_hex, c.sha256_b64, c.size,
                 c.unzipped_size, lv.created.isoformat(), lv.semver),
            )  # fmt: skip
        stored = await self.get(lv.account, lv.region, lv.name, int(version))
        assert stored is not None
        return stored

    async def get(
        self, account: str, region: str, name: str, version: int, *, include_deleted: bool = False
    ) -> LayerVersion | None:
        """One version; a deleted one only with ``include_deleted`` (for functions using it)."""
        row = self.db.execute(
            _SELECT
            + " WHERE l.account=? AND l.region=? AND l.name=? AND v.version=?"
            + ("" if include_deleted else " AND v.deleted=0"),
            (account, region, name, version),
        ).fetchone()
        return None if row is None else _row(row)

    async def versions(self, account: str, region: str, name: str) -> list[LayerVersion]:
        """Every live version of a layer, newest first (ListLayerVersions' order)."""
        rows = self.db.execute(
            _SELECT + " WHERE l.account=? AND l.region=? AND l.name=? AND v.deleted=0"
            " ORDER BY v.version DESC",
            (account, region, name),
        ).fetchall()
        return [_row(r) for r in rows]

    async def all_live(self, account: str, region: str, *, after_name: str) -> list[LayerVersion]:
        """Every live version of the layers named after ``after_name``, by name then newest
        first. ListLayers filters and pages these (a region holds few layers)."""
        rows = self.db.execute(
            _SELECT + " WHERE l.account=? AND l.region=? AND l.name>? AND v.deleted=0"
            " ORDER BY l.name, v.version DESC",
            (account, region, after_name),
        ).fetchall()
        return [_row(r) for r in rows]

    async def delete(self, account: str, region: str, name: str, version: int) -> bool:
        """Soft-delete a version and drop its permissions. True if it was live. Idempotent."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE layer_versions SET deleted=1, statements=NULL, policy_rev=NULL"
                " WHERE deleted=0 AND version=? AND layer_id=(SELECT id FROM layers"
                " WHERE account=? AND region=? AND name=?)",
                (version, account, region, name),
            )
            return cur.rowcount == 1

    async def get_policy(
        self, account: str, region: str, name: str, version: int
    ) -> tuple[Statements, str] | None:
        """The statements and revision of a live version's policy; None when it has none."""
        row = self.db.execute(
            "SELECT v.statements, v.policy_rev FROM layer_versions v JOIN layers l"
            " ON l.id = v.layer_id WHERE l.account=? AND l.region=? AND l.name=?"
            " AND v.version=? AND v.deleted=0 AND v.statements IS NOT NULL",
            (account, region, name, version),
        ).fetchone()
        return None if row is None else (list(json.loads(row[0])), str(row[1]))

    async def put_policy(
        self,
        account: str,
        region: str,
        name: str,
        version: int,
        statements: Statements,
        revision_id: str,
        *,
        expected_revision: str | None,
    ) -> bool:
        """Replace the policy (an empty list removes it) if its revision is still
        ``expected_revision`` (None: it has no policy) and the version is live."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE layer_versions SET statements=?, policy_rev=?"
                " WHERE version=? AND deleted=0 AND policy_rev IS ?"
                " AND layer_id=(SELECT id FROM layers WHERE account=? AND region=? AND name=?)",
                (json.dumps(statements) if statements else None,
                 revision_id if statements else None,
                 version, expected_revision, account, region, name),
            )  # fmt: skip
            return cur.rowcount == 1

    async def code_in_use(self, referenced: set[str]) -> set[str]:
        """Digests of every live layer version's zip, and of deleted versions whose ARN is in
        ``referenced`` (functions that use a deleted version keep running it, as in Lambda)."""
        rows = self.db.execute(
            "SELECT l.account, l.region, l.name, v.version, v.code_sha, v.deleted"
            " FROM layer_versions v JOIN layers l ON l.id = v.layer_id"
        ).fetchall()
        return {
            sha
            for account, region, name, version, sha, deleted in rows
            if not deleted or layer_arn(region, account, name, version) in referenced
        }
