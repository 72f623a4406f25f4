"""The content-addressed code store: layout, idempotence, atomicity, traversal safety, gc."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from brazier.control.code_package import extract_zip
from brazier.store.blobs import BlobNotFoundError, BlobStore

DATA = b"some code package bytes"
HEX = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_put_read_and_layout(store: BlobStore) -> None:
    assert store.put(DATA) == HEX
    assert store.path(HEX) == store.root / "sha256" / HEX[:2] / HEX
    assert store.exists(HEX)
    assert store.read(HEX) == DATA
    with store.open(HEX) as f:
        assert f.read() == DATA
    assert stat.S_IMODE(store.path(HEX).stat().st_mode) == 0o444
    assert list(store.digests()) == [HEX]


def test_put_is_idempotent_and_refreshes_mtime(store: BlobStore) -> None:
    store.put(DATA)
    old = time.time() - 3600
    os.utime(store.path(HEX), (old, old))
    assert store.put(DATA) == HEX
    assert store.path(HEX).stat().st_mtime > old + 1000
    assert store.read(HEX) == DATA
    assert leftovers(store.root) == []


def test_empty_blob(store: BlobStore) -> None:
    digest = store.put(b"")
    assert store.read(digest) == b""


def test_missing_blob(store: BlobStore) -> None:
    assert not store.exists(HEX)
    with pytest.raises(BlobNotFoundError):
        store.read(HEX)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../../etc/passwd",
        HEX[:63],
        HEX + "0",
        HEX.upper(),
        HEX + "\n",
        "../" + HEX[3:],
        "/" + HEX[1:],
        HEX[:30] + "/" + HEX[31:],
        HEX[:63] + "\0",
    ],
)
def test_bad_digests_never_reach_the_filesystem(store: BlobStore, bad: str) -> None:
    for call in (
        store.path,
        store.exists,
        store.read,
        store.open,
        store.delete,
        store.tree_path,
        store.delete_tree,
    ):
        with pytest.raises(ValueError, match="sha256"):
            call(bad)
    with pytest.raises(ValueError, match="sha256"):
        store.ensure_tree(bad, lambda dest: dest.mkdir())
    with pytest.raises(ValueError, match="sha256"):
        store.gc({bad})


def test_delete_is_idempotent_and_takes_the_tree(store: BlobStore) -> None:
    store.put(DATA)
    store.ensure_tree(HEX, lambda dest: dest.mkdir())
    store.delete(HEX)
    assert not store.exists(HEX)
    assert not store.tree_path(HEX).exists()
    store.delete(HEX)
    assert leftovers(store.root) == []


def test_failed_put_leaves_nothing(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(_fd: int) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="power cut"):
        store.put(DATA)
    monkeypatch.undo()
    assert not store.exists(HEX)
    assert leftovers(store.root) == []
    assert store.put(DATA) == HEX


def test_failed_rename_leaves_nothing(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: object) -> None:
        raise OSError("EIO")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="EIO"):
        store.put(DATA)
    monkeypatch.undo()
    assert leftovers(store.root) == []


def test_sweep_temp_removes_crash_leftovers(store: BlobStore) -> None:
    store.put(DATA)
    shard = store.path(HEX).parent
    (shard / ".tmp-1-dead").write_bytes(b"half")
    (store.root / "trees" / ".tmp-1-deadtree" / "tree").mkdir(parents=True)
    (store.root / "trees" / ".tmp-2-young").mkdir()
    old = time.time() - 3600
    for p in (shard / ".tmp-1-dead", store.root / "trees" / ".tmp-1-deadtree"):
        os.utime(p, (old, old))
    assert store.sweep_temp(min_age=60) == 2
    assert [p.name for p in leftovers(store.root)] == [".tmp-2-young"]
    assert store.sweep_temp() == 1
    assert leftovers(store.root) == []
    assert store.read(HEX) == DATA


def test_ensure_tree_builds_once(store: BlobStore) -> None:
    calls: list[Path] = []

    def extract(dest: Path) -> None:
        calls.append(dest)
        dest.mkdir()
        (dest / "f").write_text("x")

    t = store.ensure_tree(HEX, extract)
    assert t == store.tree_path(HEX) == store.root / "trees" / HEX
    assert (t / "f").read_text() == "x"
    assert store.ensure_tree(HEX, extract) == t
    assert len(calls) == 1
    assert not calls[0].exists()
    assert leftovers(store.root) == []


def test_ensure_tree_failure_leaves_nothing(store: BlobStore) -> None:
    def extract(dest: Path) -> None:
        dest.mkdir()
        (dest / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.ensure_tree(HEX, extract)
    assert not store.tree_path(HEX).exists()
    assert leftovers(store.root) == []


def test_ensure_tree_losing_the_race_is_fine(store: BlobStore) -> None:
    def extract(dest: Path) -> None:
        # Another process publishes the tree while we are still extracting ours.
        winner = store.tree_path(HEX)
        winner.mkdir()
        (winner / "f").write_text("winner")
        dest.mkdir()
        (dest / "f").write_text("loser")

    t = store.ensure_tree(HEX, extract)
    assert (t / "f").read_text() == "winner"
    assert leftovers(store.root) == []


def test_ensure_tree_with_extract_zip(store: BlobStore) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(info, "#!/bin/sh\n")
    data = buf.getvalue()
    digest = store.put(data)

    def extract(dest: Path) -> None:
        extract_zip(data, dest)

    tree = store.ensure_tree(digest, extract)
    assert os.access(tree / "bootstrap", os.X_OK)
    assert stat.S_IMODE(tree.stat().st_mode) == 0o755
    assert leftovers(store.root) == []


def test_gc(store: BlobStore) -> None:
    keep = store.put(b"keep")
    drop = store.put(b"drop")
    for d in (keep, drop):
        store.ensure_tree(d, lambda dest: dest.mkdir())
    foreign = store.root / "trees" / "README"
    foreign.write_text("not ours")
    assert store.gc({keep}).removed == 2
    assert store.exists(keep)
    assert store.tree_path(keep).is_dir()
    assert not store.exists(drop)
    assert not store.tree_path(drop).exists()
    assert foreign.exists()
    assert store.gc({keep}).removed == 0
    assert leftovers(store.root) == []


def test_gc_grace_period_spares_fresh_blobs(store: BlobStore) -> None:
    fresh = store.put(b"fresh")
    assert store.gc(set(), min_age=60).removed == 0
    assert store.exists(fresh)
    assert store.gc(set()).removed == 1
    assert not store.exists(fresh)


def test_gc_keeps_trees_in_use_and_removes_unshared_files(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")

    def tree_with(content: bytes) -> Callable[[Path], None]:
        def extract(dest: Path) -> None:
            dest.mkdir()
            (dest / "app.py").write_bytes(content)

        return extract

    running = store.put(b"zip-a")
    gone = store.put(b"zip-b")
    store.ensure_tree(running, tree_with(b"a" * 1000))
    store.ensure_tree(gone, tree_with(b"b" * 1000))
    shared = store.root / "files"
    assert len(list(shared.iterdir())) == 2

    result = store.gc(set(), keep_trees={running})

    assert (result.blobs, result.trees, result.files) == (2, 1, 1)
    assert result.bytes_freed == len(b"zip-a") + len(b"zip-b") + 1000
    assert (store.tree_path(running) / "app.py").read_bytes() == b"a" * 1000
    assert not store.tree_path(gone).exists()
    assert len(list(shared.iterdir())) == 1  # the running tree's file stays shared
    assert store.gc(set()).removed == 2  # its tree, then its file
    assert list(shared.iterdir()) == []


def test_identical_files_are_stored_once_across_trees(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")

    def tree(files: dict[str, tuple[bytes, int]]) -> Callable[[Path], None]:
        def build(dest: Path) -> None:
            dest.mkdir()
            for name, (data, mode) in files.items():
                (dest / name).write_bytes(data)
                (dest / name).chmod(mode)

        return build

    a = store.ensure_tree("a" * 64, tree({"lib.py": (b"same", 0o644), "run": (b"x", 0o755)}))
    b = store.ensure_tree("b" * 64, tree({"copy.py": (b"same", 0o644), "run": (b"x", 0o644)}))
    assert (a / "lib.py").stat().st_ino == (b / "copy.py").stat().st_ino
    assert (a / "lib.py").read_bytes() == b"same"
    # Same bytes, different mode: kept apart, so the executable bit stays where it belongs.
    assert (a / "run").stat().st_ino != (b / "run").stat().st_ino
    assert (a / "run").stat().st_mode & 0o111
    assert not (b / "run").stat().st_mode & 0o111
