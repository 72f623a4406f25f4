"""Operator-managed access keys, kept in ``<data_dir>/credentials.json``.

A JSON file rather than a table in the metadata database: ``brazier keys create`` must work before
the server has ever started, the file is easy to back up or hand to configuration management, and
secrets stay out of database dumps. The file is mode 0600 and every change replaces it atomically
(temp file, fsync, rename, fsync of the directory), so a reader sees the old keys or the new ones,
never half a file. Writers from several processes serialise on an ``flock`` of a sibling lock file.

``get`` runs on every signed request. It answers from memory and re-reads the file only when its
identity (inode, size, mtime) changes, which costs one ``stat`` (~1 us) per call and lets a key made
by another process work at once, without a restart.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import re
import secrets
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from brazier.model.errors import BrazierError

__all__ = ["CredentialStore", "CredentialStoreError", "KeyRecord"]

_FORMAT_VERSION = 1
_ACCOUNT = re.compile(r"^\d{12}$")
_KEY_ID_ALPHABET = string.ascii_uppercase + string.digits
# AWS secrets are 40 characters of base64's alphabet; '/' and '+' are legal and clients cope.
_SECRET_ALPHABET = string.ascii_letters + string.digits + "/+"


class CredentialStoreError(BrazierError):
    """The credentials file exists but cannot be read or understood."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    access_key_id: str
    secret_access_key: str
    account_id: str
    created: str  # ISO 8601, UTC
    description: str = ""


_Signature = tuple[int, int, int]  # (st_ino, st_size, st_mtime_ns)


class CredentialStore:
    """Access keys in one JSON file. Safe to share between threads and between processes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._seen: _Signature | None = None
        self._keys: dict[str, KeyRecord] = {}

    @property
    def path(self) -> Path:
        return self._path

    def get(self, access_key_id: str) -> KeyRecord | None:
        """The key with this id, or None. Reflects changes made by other processes."""
        return self._current().get(access_key_id)

    def list(self) -> builtins.list[KeyRecord]:
        """Every key, oldest first."""
        return sorted(self._current().values(), key=lambda k: (k.created, k.access_key_id))

    def create(self, account_id: str, description: str = "") -> KeyRecord:
        """Make, store and return a new key for ``account_id``. Not idempotent."""
        if not _ACCOUNT.match(account_id):
            raise ValueError(f"account id must be 12 digits: {account_id!r}")
        with self._writing() as keys:
            while True:
                key_id = "AKIA" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))
                if key_id not in keys:
                    break
            record = KeyRecord(
                access_key_id=key_id,
                secret_access_key="".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)),
                account_id=account_id,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                description=description,
            )
            keys[key_id] = record
        return record

    def delete(self, access_key_id: str) -> bool:
        """Remove a key. True if it existed; deleting an absent key is a no-op returning False."""
        with self._writing() as keys:
            return keys.pop(access_key_id, None) is not None

    # --- internals -----------------------------------------------------------------------------

    def _current(self) -> dict[str, KeyRecord]:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return {}
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if sig == self._seen:
            return self._keys
        with self._lock:
            if sig != self._seen:
                keys = self._read()
                self._keys, self._seen = keys, sig
            return self._keys

    def _read(self) -> dict[str, KeyRecord]:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialStoreError(f"cannot read {self._path}: {exc}") from exc
        try:
            doc = json.loads(raw)
            records = [KeyRecord(**item) for item in doc["keys"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialStoreError(f"{self._path} is not a brazier credentials file") from exc
        return {r.access_key_id: r for r in records}

    @contextmanager
    def _writing(self) -> Iterator[dict[str, KeyRecord]]:
        """Read-modify-write under an exclusive lock held across processes."""
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._lock:
                keys = self._read()
                yield keys
                self._write(keys)
                # Forget the identity so the next get() re-reads what we just wrote.
                self._seen = None
        finally:
            os.close(fd)  # closing releases the flock

    def _write(self, keys: dict[str, KeyRecord]) -> None:
        doc = {
            "version": _FORMAT_VERSION,
            "keys": [asdict(k) for k in sorted(keys.values(), key=lambda k: k.created)],
        }
        data = (json.dumps(doc, indent=2) + "\n").encode()
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)  # O_CREAT's mode is ignored if the file existed
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
