"""Identifiers minted on every request: request ids and random hex for trace ids.

They must be unique, not secret (a request id is printed in logs and response headers; the
Runtime API only ever serves an environment its own invocation). So they come from a PRNG seeded
once from the OS, rather than a ``getrandom`` system call per id as ``uuid.uuid4()`` and
``os.urandom`` make. A forked child reseeds.
"""

from __future__ import annotations

import os
import random

_rng = random.Random(os.urandom(32))  # noqa: S311 - unique, not secret (see above)
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))

_VERSION_4 = (0xF000 << 64, 0x4000 << 64)  # mask and value of the version nibble
_VARIANT_1 = (0xC000 << 48, 0x8000 << 48)  # mask and value of the RFC 4122 variant bits


def request_id() -> str:
    """A random (version 4) UUID in its 36-character text form, as Lambda's request ids."""
    bits = _rng.getrandbits(128)
    bits = (bits & ~_VERSION_4[0]) | _VERSION_4[1]
    bits = (bits & ~_VARIANT_1[0]) | _VARIANT_1[1]
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as lower-case hex."""
    return f"{_rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"
