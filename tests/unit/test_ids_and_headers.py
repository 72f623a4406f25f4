"""Request ids (unique UUID v4 text, reseeded after fork) and the API's request headers."""

from __future__ import annotations

import os
import uuid

from brazier.api.headers import RequestHeaders
from brazier.model import ids


def test_request_ids_are_version_4_uuids_and_unique() -> None:
    seen = {ids.request_id() for _ in range(20_000)}
    assert len(seen) == 20_000
    for rid in list(seen)[:200]:
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_random_hex_length() -> None:
    assert len(ids.random_hex(20)) == 40
    assert int(ids.random_hex(20), 16) >= 0
    assert ids.random_hex(8) != ids.random_hex(8)


def test_a_forked_child_draws_other_ids() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, ids.request_id().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.waitpid(pid, 0)
    assert child != ids.request_id()


def test_request_headers_are_case_insensitive_first_value_and_keep_every_pair() -> None:
    h = RequestHeaders([(b"x-amz-date", b"1"), (b"x-dup", b"a"), (b"x-dup", b"b")])
    assert h["X-Amz-Date"] == "1"
    assert h.get("X-DUP") == "a"
    assert h.get("absent") is None
    assert h.get("absent", "d") == "d"
    assert "x-amz-DATE" in h
    assert 3 not in h
    assert sorted(h) == ["x-amz-date", "x-dup"]
    assert len(h) == 2
    assert h.items() == [("x-amz-date", "1"), ("x-dup", "a"), ("x-dup", "b")]
