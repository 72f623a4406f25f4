"""Code and layer trees as overlays whose root is the tree (sandbox/codetrees.py)."""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

import pytest

from brazier.sandbox.codetrees import CodeTrees

from .conftest import needs_root

pytestmark = [pytest.mark.sandbox, needs_root]

_libc = ctypes.CDLL(None, use_errno=True)
_MOVE_MOUNT, _MOVE_MOUNT_F_EMPTY_PATH, _MNT_DETACH = 429, 4, 2


def _attach(fd: int, target: Path) -> None:
    ret = _libc.syscall(
        ctypes.c_long(_MOVE_MOUNT), ctypes.c_int(fd), b"", ctypes.c_int(-100),
        str(target).encode(), ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
    )  # fmt: skip
    assert ret == 0, os.strerror(ctypes.get_errno())


def _mountinfo_line(target: Path) -> list[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4] == str(target):
            return line.split()
    raise AssertionError(f"{target} is not mounted")


def test_a_clone_shows_the_tree_read_only_with_no_host_path(tmp_path: Path) -> None:
    tree, empty, target = tmp_path / "trees" / "abc", tmp_path / "empty", tmp_path / "mnt"
    for d in (tree, empty, target):
        d.mkdir(parents=True)
    (tree / "app.py").write_text("x = 1\n")
    trees = CodeTrees(empty)
    fd = trees.clone(tree)
    try:
        _attach(fd, target)
        try:
            fields = _mountinfo_line(target)
            assert fields[3] == "/", fields  # the root field: the filesystem's own root
            assert str(tree) not in " ".join(fields) and str(tmp_path) not in fields[-1], fields
            assert "ro" in fields[5].split(","), fields
            assert sorted(os.listdir(target)) == ["app.py"]
            with pytest.raises(OSError):
                (target / "new").write_text("no")
        finally:
            _libc.umount2(str(target).encode(), _MNT_DETACH)
    finally:
        os.close(fd)
        trees.close()


def test_overlays_are_kept_per_tree_and_pruned_when_the_tree_goes(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "f").write_text(d.name)
    trees = CodeTrees(empty, keep=4)
    try:
        for tree in (a, a, b, a):
            os.close(trees.clone(tree))
        assert trees.kept == 2  # one overlay per tree, reused
        shutil.rmtree(b)
        assert trees.prune() == 1 and trees.kept == 1
        shutil.rmtree(a)
        a.mkdir()  # another tree at the same path: a new overlay, the old one pruned
        os.close(trees.clone(a))
        assert trees.prune() == 1 and trees.kept == 1
    finally:
        trees.close()
    assert trees.kept == 0
