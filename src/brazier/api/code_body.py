"""A code upload's zip, decoded from a spooled JSON body without holding the body in memory.

CreateFunction, UpdateFunctionCode and PublishLayerVersion carry up to 50 MB of zip as base64
in one JSON string (a 70 MB request). Parsed the ordinary way, the request body, the JSON's
string and the decoded zip are all in memory at once (245 MB of RSS for a 49 MB zip, measured).
Here the body stays in its spool file: the ``"ZipFile"`` string is found by scanning, decoded
from the file in pieces, and replaced in the (now small) JSON by a placeholder, which the
ordinary parser then validates with everything else. The caller puts the zip where the
placeholder came out; if it came out anywhere but the ZipFile member (a ``"ZipFile"`` inside
another string, say), the request is parsed the ordinary way instead, so the result is always
exactly what the ordinary parser would give.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import IO

_KEY = b'"ZipFile"'
_COLON = re.compile(rb"\s*:\s*\"")
_SCAN = 1 << 20
_DECODE = 4 << 20  # a multiple of 4: base64 decodes piece by piece
# Whatever is left once the zip is taken out must be small: the other members of the request.
_MAX_REST = 1 << 20


def placeholder() -> tuple[str, bytes]:
    """A fresh base64 text (and what it decodes to) that cannot occur in the request by chance."""
    raw = b"brazier-zip-placeholder:" + secrets.token_bytes(24)
    return base64.b64encode(raw).decode(), raw


def split_zip(file: IO[bytes], size: int, marker: str) -> tuple[bytes, bytes] | None:
    """(the JSON with the first ``"ZipFile"`` string replaced by ``marker``, the decoded zip),
    or None when the body does not have that shape (the ordinary parser then decides)."""
    key = _find(file, _KEY, 0)
    if key < 0:
        return None
    file.seek(key + len(_KEY))
    m = _COLON.match(file.read(64))
    if m is None:
        return None
    start = key + len(_KEY) + m.end()
    end = _find(file, b'"', start)
    if end < 0 or size - (end - start) > _MAX_REST:
        return None
    file.seek(0)
    head = file.read(start)
    file.seek(end)
    rest = file.read()
    zipped = _decode(file, start, end)
    if zipped is None:
        return None
    return head + marker.encode() + rest, zipped


def _find(file: IO[bytes], pattern: bytes, start: int) -> int:
    """Offset of the first ``pattern`` at or after ``start``, or -1; reads ≤ 1 MiB at a time."""
    file.seek(start)
    pos = start
    tail = b""
    while chunk := file.read(_SCAN):
        buf = tail + chunk
        i = buf.find(pattern)
        if i >= 0:
            return pos - len(tail) + i
        tail = buf[-(len(pattern) - 1) :] if len(pattern) > 1 else b""
        pos += len(chunk)
    return -1


def _decode(file: IO[bytes], start: int, end: int) -> bytes | None:
    if (end - start) % 4:
        return None
    file.seek(start)
    pieces: list[bytes] = []
    left = end - start
    try:
        while left:
            text = file.read(min(_DECODE, left))
            if not text:
                return None
            left -= len(text)
            pieces.append(binascii.a2b_base64(text, strict_mode=True))
    except binascii.Error:
        return None
    return b"".join(pieces)
