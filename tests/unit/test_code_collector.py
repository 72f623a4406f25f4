"""The collector keeps pinned, referenced and running code, and nothing else."""

from __future__ import annotations

import asyncio
from pathlib import Path

from brazier.control.code_gc import CodeCollector, CodePins
from brazier.store.blobs import BlobStore


def _tree(dest: Path) -> None:
    dest.mkdir()
    (dest / "app.py").write_text("x = 1\n")


async def _test_pinned_referenced_and_running_code_survive(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    pins = CodePins()
    referenced = blobs.put(b"referenced")
    running = blobs.put(b"running")
    blobs.ensure_tree(running, _tree)
    garbage = blobs.put(b"garbage")
    blobs.ensure_tree(garbage, _tree)

    async def in_use() -> set[str]:
        return {referenced}

    collector = CodeCollector(blobs, pins, [in_use], lambda: {blobs.tree_path(running)})
    async with pins.pin(blobs.put(b"in flight")):
        result = await collector.collect()
        assert blobs.exists(blobs.put(b"in flight"))
    assert (result.blobs, result.trees) == (2, 1)  # running's and garbage's zips; garbage's tree
    assert blobs.exists(referenced)
    assert blobs.tree_path(running).is_dir()
    assert not blobs.exists(garbage) and not blobs.tree_path(garbage).exists()
    # The pin is gone: the in-flight blob was never referenced, so the next collection takes it.
    assert (await collector.collect()).blobs == 1


async def _test_a_pin_waits_for_a_running_collection(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    pins = CodePins()
    entered = asyncio.Event()
    proceed = asyncio.Event()

    async def slow_source() -> set[str]:
        entered.set()
        await proceed.wait()
        return set()

    collector = CodeCollector(blobs, pins, [slow_source], set)
    collecting = asyncio.create_task(collector.collect())
    await entered.wait()

    async def store_during_collection() -> str:
        async with pins.pin("a" * 64):
            return "stored"

    storing = asyncio.create_task(store_during_collection())
    await asyncio.sleep(0.05)
    assert not storing.done()  # the pin waits: the collection decided without it
    proceed.set()
    await collecting
    assert await storing == "stored"


async def _test_release_triggers_a_collection(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    pins = CodePins()

    async def nothing() -> set[str]:
        return set()

    garbage = blobs.put(b"garbage")
    collector = CodeCollector(blobs, pins, [nothing], set, settle=0.0, period=3600)
    async with collector.running():
        pins.released()
        for _ in range(100):
            if not blobs.exists(garbage):
                break
            await asyncio.sleep(0.01)
    assert not blobs.exists(garbage)


def test_pinned_referenced_and_running_code_survive(tmp_path: Path) -> None:
    asyncio.run(_test_pinned_referenced_and_running_code_survive(tmp_path))


def test_a_pin_waits_for_a_running_collection(tmp_path: Path) -> None:
    asyncio.run(_test_a_pin_waits_for_a_running_collection(tmp_path))


def test_release_triggers_a_collection(tmp_path: Path) -> None:
    asyncio.run(_test_release_triggers_a_collection(tmp_path))
