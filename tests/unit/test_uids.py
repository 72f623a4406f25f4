"""Host uid leases: exclusive across allocators (servers), recycled once released."""

from __future__ import annotations

from pathlib import Path

import pytest

from brazier.sandbox.errors import SandboxUnavailable
from brazier.sandbox.uids import UID_BASE, UidAllocator


def test_leases_are_exclusive_across_servers_and_recycled(tmp_path: Path) -> None:
    one = UidAllocator(tmp_path, base=UID_BASE, count=3)
    two = UidAllocator(tmp_path, base=UID_BASE, count=3)
    a, b = one.lease(), one.lease()
    c = two.lease()
    assert len({a.uid, b.uid, c.uid}) == 3
    assert all(UID_BASE <= x.uid < UID_BASE + 3 for x in (a, b, c))
    assert a.gid == a.uid
    with pytest.raises(SandboxUnavailable):
        two.lease()
    b.release()
    b.release()  # idempotent
    d = two.lease()
    assert d.uid == b.uid
    e_uid = a.uid
    a.release()
    assert one.lease().uid == e_uid  # the released uid first: no new lock files
    assert len(list(tmp_path.iterdir())) == 3
