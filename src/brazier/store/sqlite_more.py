"""Versions, aliases, reserved concurrency and event invoke configs in the SQLite store.

A mixin of :class:`brazier.store.sqlite.SqliteStore`, kept apart to keep each module small.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from brazier.model.aliases import Alias
from brazier.model.functions import FunctionVersion

SCHEMA = """
CREATE TABLE IF NOT EXISTS aliases (
    function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    description TEXT NOT NULL,
    weights     TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    PRIMARY KEY (function_id, name)
);
CREATE TABLE IF NOT EXISTS function_settings (
    function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    qualifier   TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (function_id, kind, qualifier)
);
"""


class VersionsAndAliases:
    @property
    def db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _function_id(self, account: str, region: str, name: str) -> int | None:
        raise NotImplementedError

    @staticmethod
    def _insert_version(db: sqlite3.Connection, fid: int, fv: FunctionVersion) -> None:
        raise NotImplementedError

    # -- versions ---------------------------------------------------------------------------------

    async def publish_version(self, fv: FunctionVersion) -> FunctionVersion | None:
        """Insert ``fv`` as the function's next version number (``fv.version`` is replaced).
        None if the function is gone. Numbers are never reused."""
        from dataclasses import replace

        with self._tx() as db:
            fid = self._function_id(fv.account, fv.region, fv.name)
            if fid is None:
                return None
            (number,) = db.execute(
                "UPDATE functions SET next_version = next_version + 1 WHERE id=?"
                " RETURNING next_version - 1",
                (fid,),
            ).fetchone()
            published = replace(fv, version=str(number))
            self._insert_version(db, fid, published)
            return published

    async def delete_version(self, account: str, region: str, name: str, version: str) -> bool:
        with self._tx() as db:
            fid = self._function_id(account, region, name)
            if fid is None:
                return False
            cur = db.execute(
                "DELETE FROM versions WHERE function_id=? AND version=?", (fid, version)
            )
            db.execute(
                "DELETE FROM function_settings WHERE function_id=? AND qualifier=?",
                (fid, version),
            )
            return cur.rowcount == 1

    # -- aliases ----------------------------------------------------------------------------------

    def _alias_rows(self, where: str, args: tuple[Any, ...]) -> Iterator[Alias]:
        rows = self.db.execute(
            # ``where`` is one of two fixed fragments; every value is a parameter.
            "SELECT f.account, f.region, f.name, a.name, a.version, a.description, a.weights,"  # noqa: S608
            " a.revision_id FROM aliases a JOIN functions f ON f.id = a.function_id"
            f" WHERE {where} ORDER BY a.name",
            args,
        )
        for r in rows:
            yield Alias(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7])

    async def get_alias(self, account: str, region: str, name: str, alias: str) -> Alias | None:
        where = "f.account=? AND f.region=? AND f.name=? AND a.name=?"
        return next(self._alias_rows(where, (account, region, name, alias)), None)

    async def list_aliases(self, account: str, region: str, name: str) -> list[Alias]:
        return list(
            self._alias_rows("f.account=? AND f.region=? AND f.name=?", (account, region, name))
        )

    async def put_alias(self, alias: Alias, *, expected_revision: str | None) -> bool:
        """Create (``expected_revision`` None: must not exist) or compare-and-swap an alias."""
        with self._tx() as db:
            fid = self._function_id(alias.account, alias.region, alias.function)
            if fid is None:
                return False
            row = db.execute(
                "SELECT revision_id FROM aliases WHERE function_id=? AND name=?", (fid, alias.name)
            ).fetchone()
            if (row[0] if row else None) != expected_revision:
                return False
            db.execute(
                "INSERT OR REPLACE INTO aliases(function_id, name, version, description, weights,"
                " revision_id) VALUES (?,?,?,?,?,?)",
                (fid, alias.name, alias.version, alias.description,
                 json.dumps(dict(alias.weights)), alias.revision_id),
            )  # fmt: skip
            return True

    async def delete_alias(self, account: str, region: str, name: str, alias: str) -> bool:
        with self._tx() as db:
            fid = self._function_id(account, region, name)
            if fid is None:
                return False
            db.execute(
                "DELETE FROM function_settings WHERE function_id=? AND qualifier=?", (fid, alias)
            )
            cur = db.execute("DELETE FROM aliases WHERE function_id=? AND name=?", (fid, alias))
            return cur.rowcount == 1

    # -- per-function settings (reserved concurrency, event invoke configs, ...) -------------------

    async def get_setting(
        self, account: str, region: str, name: str, kind: str, qualifier: str = ""
    ) -> Any | None:
        row = self.db.execute(
            "SELECT s.value FROM function_settings s JOIN functions f ON f.id = s.function_id"
            " WHERE f.account=? AND f.region=? AND f.name=? AND s.kind=? AND s.qualifier=?",
            (account, region, name, kind, qualifier),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    async def list_settings(self, account: str, kind: str) -> list[tuple[str, str, str, Any]]:
        """(region, function, qualifier, value) of every setting of ``kind`` in an account."""
        rows = self.db.execute(
            "SELECT f.region, f.name, s.qualifier, s.value FROM function_settings s"
            " JOIN functions f ON f.id = s.function_id WHERE f.account=? AND s.kind=?"
            " ORDER BY f.name, s.qualifier",
            (account, kind),
        ).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    async def all_settings(self, kind: str) -> list[tuple[str, str, str, str, Any]]:
        """(account, region, function, qualifier, value) of every setting of ``kind``."""
        rows = self.db.execute(
            "SELECT f.account, f.region, f.name, s.qualifier, s.value FROM function_settings s"
            " JOIN functions f ON f.id = s.function_id WHERE s.kind=?",
            (kind,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    async def put_setting(
        self, account: str, region: str, name: str, kind: str, value: Any, qualifier: str = ""
    ) -> bool:
        """Set (or with ``value`` None, delete) a setting. False if the function is gone."""
        with self._tx() as db:
            fid = self._function_id(account, region, name)
            if fid is None:
                return False
            if value is None:
                db.execute(
                    "DELETE FROM function_settings WHERE function_id=? AND kind=? AND qualifier=?",
                    (fid, kind, qualifier),
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO function_settings(function_id, kind, qualifier, value)"
                    " VALUES (?,?,?,?)",
                    (fid, kind, qualifier, json.dumps(value)),
                )
            return True
