"""One contract for every ``AsyncQueue``: the SQLite queue and the in-memory fake both pass it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from brazier.events.lifecycle import EventState, IllegalTransition
from brazier.events.queue import AsyncQueue, Kind, QueuedEvent, UnknownEvent
from brazier.events.sqlite_queue import SqliteQueue
from brazier.testing.clock import ManualClock
from brazier.testing.queues import InMemoryQueue

_ids = itertools.count()


def event(fn: str = "f", *, at: float, **kw: object) -> QueuedEvent:
    n = next(_ids)
    return QueuedEvent(
        id=f"e{n}", kind=Kind.INVOKE, account="000000000000", region="us-east-1", function=fn,
        qualifier=None, payload=b'{"n": %d}' % n, request_id=f"r{n}", enqueued_at=at,
        not_before=at, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture(params=["sqlite", "memory"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncQueue:
    """Not yet running: conftest opens it around the test, on the test's loop."""
    if request.param == "sqlite":
        return SqliteQueue(tmp_path / "events.db")
    return InMemoryQueue()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def test_an_enqueued_event_is_leased_once(queue: AsyncQueue, clock: ManualClock) -> None:
    e = event(at=clock.now())
    await queue.enqueue(e)
    got = await queue.lease(clock.now(), clock.now() + 30, 10)
    assert [g.id for g in got] == [e.id]
    assert got[0].state is EventState.LEASED
    assert got[0].payload == e.payload and got[0].request_id == e.request_id
    assert await queue.lease(clock.now(), clock.now() + 30, 10) == []


async def test_leases_come_oldest_due_first_and_respect_the_limit(
    queue: AsyncQueue, clock: ManualClock
) -> None:
    events = [event(at=clock.now() + i) for i in range(3)]
    for e in reversed(events):
        await queue.enqueue(e)
    clock.advance(5)
    first = await queue.lease(clock.now(), clock.now() + 30, 2)
    assert [g.id for g in first] == [events[0].id, events[1].id]
    assert [g.id for g in await queue.lease(clock.now(), clock.now() + 30, 2)] == [events[2].id]


async def test_an_expired_lease_is_leased_again(queue: AsyncQueue, clock: ManualClock) -> None:
    e = event(at=clock.now())
    await queue.enqueue(e)
    await queue.lease(clock.now(), clock.now() + 30, 1)
    clock.advance(31)
    assert [g.id for g in await queue.lease(clock.now(), clock.now() + 30, 1)] == [e.id]


async def test_ack_removes_and_enqueues_its_follow_up(
    queue: AsyncQueue, clock: ManualClock
) -> None:
    e = event(at=clock.now())
    then = [event("dest", at=clock.now()), event("dlq", at=clock.now())]
    await queue.enqueue(e)
    await queue.lease(clock.now(), clock.now() + 30, 1)
    await queue.ack(e.id, then=then)
    assert await queue.get(e.id) is None
    got = await queue.lease(clock.now(), clock.now() + 30, 10)
    assert sorted(g.id for g in got) == sorted(t.id for t in then)


async def test_retry_later_waits_until_not_before(queue: AsyncQueue, clock: ManualClock) -> None:
    from dataclasses import replace

    e = event(at=clock.now())
    await queue.enqueue(e)
    (leased,) = await queue.lease(clock.now(), clock.now() + 30, 1)
    later = replace(leased, not_before=clock.now() + 60, attempts=1, last_result=b'{"x":1}',
                    last_error="Unhandled")  # fmt: skip
    await queue.retry_later(later)
    assert await queue.next_due() == clock.now() + 60
    assert await queue.lease(clock.now() + 59, clock.now() + 90, 1) == []
    (again,) = await queue.lease(clock.now() + 60, clock.now() + 90, 1)
    assert (again.id, again.request_id, again.attempts) == (e.id, e.request_id, 1)
    assert (again.last_result, again.last_error) == (b'{"x":1}', "Unhandled")


async def test_dead_letters_are_kept_and_visible(queue: AsyncQueue, clock: ManualClock) -> None:
    e = event(at=clock.now())
    await queue.enqueue(e)
    await queue.lease(clock.now(), clock.now() + 30, 1)
    await queue.dead_letter(e.id, "destination down")
    clock.advance(1000)
    assert await queue.lease(clock.now(), clock.now() + 30, 10) == []
    kept = await queue.get(e.id)
    assert kept is not None and kept.state is EventState.DEAD
    assert kept.last_error == "destination down"
    (depth,) = await queue.depths(clock.now())
    assert (depth.ready, depth.leased, depth.dead) == (0, 0, 1)


async def test_depths_count_per_function(queue: AsyncQueue, clock: ManualClock) -> None:
    for fn in ("a", "a", "b"):
        await queue.enqueue(event(fn, at=clock.now()))
    await queue.lease(clock.now(), clock.now() + 30, 1)
    clock.advance(10)
    depths = {d.function: d for d in await queue.depths(clock.now())}
    assert depths["a"].ready + depths["a"].leased == 2
    assert depths["a"].leased == 1
    assert depths["b"].ready == 1
    assert depths["a"].oldest_age == pytest.approx(10)


async def test_settling_what_is_not_leased_is_refused(
    queue: AsyncQueue, clock: ManualClock
) -> None:
    e = event(at=clock.now())
    await queue.enqueue(e)
    with pytest.raises(IllegalTransition):
        await queue.ack(e.id)
    with pytest.raises(IllegalTransition):
        await queue.dead_letter(e.id, "x")
    with pytest.raises(UnknownEvent):
        await queue.ack("no-such-event")


async def test_recover_returns_leased_events_to_ready(
    queue: AsyncQueue, clock: ManualClock
) -> None:
    e = event(at=clock.now())
    await queue.enqueue(e)
    await queue.lease(clock.now(), clock.now() + 3600, 1)
    assert await queue.recover() == 1
    assert [g.id for g in await queue.lease(clock.now(), clock.now() + 30, 1)] == [e.id]


async def test_concurrent_enqueues_all_land(queue: AsyncQueue, clock: ManualClock) -> None:
    events = [event(at=clock.now()) for _ in range(200)]
    await asyncio.gather(*(queue.enqueue(e) for e in events))
    got = await queue.lease(clock.now(), clock.now() + 30, 1000)
    assert sorted(g.id for g in got) == sorted(e.id for e in events)


async def test_sqlite_batches_concurrent_enqueues_and_keeps_them(tmp_path: Path) -> None:
    """Group commit: 200 concurrent enqueues take far fewer commits; a new queue on the same
    file (a restart) finds every one of them."""
    clock = ManualClock()
    q = SqliteQueue(tmp_path / "events.db")
    events = [event(at=clock.now()) for _ in range(200)]
    async with q.running():
        await asyncio.gather(*(q.enqueue(e) for e in events))
        assert q.batches < 50
        await q.lease(clock.now(), clock.now() + 3600, 5)
    again = SqliteQueue(tmp_path / "events.db")
    async with again.running():
        assert await again.recover() == 5
        got = await again.lease(clock.now(), clock.now() + 30, 1000)
        assert sorted(g.id for g in got) == sorted(e.id for e in events)
