"""Reading a request body with a cap, spooling large ones to disk as they arrive.

The cap is checked twice: against ``Content-Length`` before anything is read, and against what
has arrived, chunk by chunk, for chunked bodies (reading stops at the cap). Bodies larger than
:data:`limits.SPOOL_ABOVE` go to an unnamed file in the spool directory (``O_TMPFILE``: nothing
is left behind by a crash) rather than to a growing list of chunks, so a body refused half-way
never held more than ``SPOOL_ABOVE`` bytes of memory. A body that is accepted is read back whole:
the operations behind it (JSON parsing, the invoke payload) need it in memory.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from starlette.types import Receive

from brazier.api import limits
from brazier.model.errors import InvalidRequestContentException, LambdaError


class BodyTooLarge(Exception):
    """The body is (or announces itself as) larger than the route's cap."""


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


@dataclass(slots=True)
class Spooled:
    """A body kept on disk (an unnamed file): its size and SHA-256, hashed as it arrived."""

    file: IO[bytes]
    size: int
    sha256: str

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The ``Content-Length`` the request announced (None when chunked or absent)."""
    value = headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        # httptools refuses such requests before the app sees them; a guard all the same.
        raise InvalidRequestContentException("Content-Length is not a number")
    return int(value)


def needs_early_auth(headers: Mapping[str, str]) -> bool:
    """True when the body may be large: the sender is checked before any of it is read."""
    declared = declared_length(headers)
    if declared is None:
        return "transfer-encoding" in headers
    return declared > limits.SPOOL_ABOVE


async def read_body(
    receive: Receive,
    headers: Mapping[str, str],
    limit: int,
    *,
    spool_dir: Path | None = None,
    refuse: Callable[[], LambdaError] | None = None,
) -> bytes:
    """The whole body, at most ``limit`` bytes. Raises ``refuse()`` (or :class:`BodyTooLarge`)
    past the cap, and :class:`ClientGone` when the client leaves first."""
    body = await read_body_spooled(receive, headers, limit, spool_dir=spool_dir, refuse=refuse)
    if isinstance(body, bytes):
        return body
    try:
        return body.read()
    finally:
        body.close()


async def read_body_spooled(
    receive: Receive,
    headers: Mapping[str, str],
    limit: int,
    *,
    spool_dir: Path | None = None,
    refuse: Callable[[], LambdaError] | None = None,
) -> bytes | Spooled:
    """As :func:`read_body`, but a body over ``SPOOL_ABOVE`` stays on disk (the caller closes
    it)."""

    def over() -> Exception:
        return refuse() if refuse is not None else BodyTooLarge()

    declared = declared_length(headers)
    if declared is not None and declared > limit:
        raise over()
    chunks: list[bytes] = []
    total = 0
    spool = None
    digest = None
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise over()
            if spool is None and total > limits.SPOOL_ABOVE and spool_dir is not None:
                spool = _spool_file(spool_dir)
                digest = hashlib.sha256()
                for c in chunks:
                    spool.write(c)
                    digest.update(c)
                chunks = []
            if spool is not None and digest is not None:
                spool.write(chunk)
                digest.update(chunk)
            elif chunk:
                chunks.append(chunk)
            if not message.get("more_body"):
                break
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    if spool is None or digest is None:
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return Spooled(spool, total, digest.hexdigest())


def _spool_file(spool_dir: Path) -> IO[bytes]:
    spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Unbuffered in Python: each chunk (≤ 64 KiB from uvicorn) goes straight to the page cache.
    return tempfile.TemporaryFile(dir=spool_dir, buffering=0)
