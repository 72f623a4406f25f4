"""What a function gets at /opt: layers merged in order, hard links, size, atomicity."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from brazier.control import layer_tree
from brazier.control.layer_resolve import ResolvedLayer
from brazier.control.layers import LayerService, PublishLayerVersion
from brazier.model.identity import Caller
from brazier.store.blobs import BlobStore
from brazier.store.layers import SqliteLayerStore

ME = Caller("111111111111", "us-east-1")


def zip_of(files: dict[str, str], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LayerService]:
    db = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    yield LayerService(SqliteLayerStore(db), BlobStore(tmp_path / "code"), code_url=str)
    db.close()


def publish(svc: LayerService, name: str, data: bytes, description: str = "") -> ResolvedLayer:
    lv = asyncio.run(svc.publish(ME, PublishLayerVersion(name, data, description=description)))
    return ResolvedLayer(lv.arn, lv)


def test_later_layers_overwrite_earlier_files(service: LayerService) -> None:
    a = publish(service, "a", zip_of({"python/x.py": "A", "python/a.py": "a", "bin/tool": "1"}))
    b = publish(service, "b", zip_of({"python/x.py": "BB", "bin/tool/sub": "dir now"}))
    merged = service.merged_tree([a, b])
    assert (merged / "python" / "x.py").read_text() == "BB"
    assert (merged / "python" / "a.py").read_text() == "a"
    assert (merged / "bin" / "tool" / "sub").read_text() == "dir now"  # a dir replaces a file
    other = service.merged_tree([b, a])
    assert other != merged
    assert (other / "python" / "x.py").read_text() == "A"
    assert (other / "bin" / "tool").read_text() == "1"  # a file replaces a dir
    assert service.merged_tree([a, b]) == merged  # content-addressed, built once
    assert merged.parent.name == layer_tree.MERGED_DIR
    assert merged.name == layer_tree.merged_key([a.sha256_hex, b.sha256_hex])


def test_files_are_hard_links_not_copies(service: LayerService) -> None:
    a = publish(service, "a", zip_of({"lib/one.so": "x" * 1000}, {"lib/alias.so": "one.so"}))
    b = publish(service, "b", zip_of({"python/b.py": "b"}))
    merged = service.merged_tree([a, b])
    src = service.layer_tree(a.layer) / "lib" / "one.so"
    dst = merged / "lib" / "one.so"
    assert os.stat(src).st_ino == os.stat(dst).st_ino and os.stat(dst).st_nlink >= 2
    assert os.readlink(merged / "lib" / "alias.so") == "one.so"
    assert (merged / "lib" / "alias.so").read_text() == "x" * 1000
    assert oct(os.stat(merged).st_mode & 0o777) == "0o755"


def test_single_layer_is_its_own_tree(service: LayerService) -> None:
    a = publish(service, "a", zip_of({"f": "1234"}))
    assert service.merged_tree([a]) == service.layer_tree(a.layer)
    assert service.unzipped_size([a]) == 4
    assert service.unzipped_size([]) == 0


def test_unzipped_size_counts_what_the_function_gets(service: LayerService) -> None:
    a = publish(service, "a", zip_of({"same": "x" * 100, "only-a": "y" * 10}))
    b = publish(service, "b", zip_of({"same": "z" * 30}, {"link": "same"}))
    # 30 (b's "same" overwrote a's 100) + 10 + the link's 4-byte target
    assert service.unzipped_size([a, b]) == 44

    async def check(total: int) -> None:
        await service.check_unzipped_total([a, b], total)

    asyncio.run(check(262_144_000 - 44))
    with pytest.raises(Exception, match="Unzipped size must be smaller than 262144000 bytes"):
        asyncio.run(check(262_144_000 - 43))


def test_merge_is_atomic(service: LayerService, monkeypatch: pytest.MonkeyPatch) -> None:
    a = publish(service, "a", zip_of({"f1": "1"}))
    b = publish(service, "b", zip_of({"f2": "2"}))
    real_link = os.link
    calls = 0

    def failing_link(*args: object, **kw: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk full")
        real_link(*args, **kw)  # type: ignore[arg-type]

    service.layer_tree(a.layer), service.layer_tree(b.layer)
    monkeypatch.setattr(layer_tree.os, "link", failing_link)
    with pytest.raises(OSError, match="disk full"):
        service.merged_tree([a, b])
    base = service.blobs.root / layer_tree.MERGED_DIR
    assert list(base.iterdir()) == []  # neither a half tree nor a temp dir is left
    monkeypatch.setattr(layer_tree.os, "link", real_link)
    merged = service.merged_tree([a, b])
    assert sorted(p.name for p in merged.iterdir()) == ["f1", "f2"]
    assert [p.name for p in base.iterdir()] == [merged.name]


def test_lost_race_keeps_the_winner(service: LayerService, monkeypatch: pytest.MonkeyPatch) -> None:
    a = publish(service, "a", zip_of({"f1": "1"}))
    b = publish(service, "b", zip_of({"f2": "2"}))
    trees = [service.layer_tree(a.layer), service.layer_tree(b.layer)]
    real_rename = os.rename

    def racing_rename(src: str, dst: str) -> None:
        # Another builder publishes the same merge just before our rename.
        os.mkdir(dst)
        (Path(dst) / "winner").write_text("")
        real_rename(src, dst)

    monkeypatch.setattr(layer_tree.os, "rename", racing_rename)
    merged = layer_tree.merge_trees(trees, service.blobs.root)
    assert (merged / "winner").exists()
    assert [p.name for p in merged.parent.iterdir()] == [merged.name]  # our copy was dropped
