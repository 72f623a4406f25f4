"""An in-memory ``AsyncQueue``: the same semantics as the SQLite queue, no disk.

It passes the same contract suite (``tests/events/test_queue_contract.py``), so service tests can
use it with a :class:`ManualClock` and trust it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

from brazier.events.lifecycle import EventState, move
from brazier.events.queue import Depth, QueuedEvent, UnknownEvent


class InMemoryQueue:
    def __init__(self) -> None:
        self._events: dict[str, QueuedEvent] = {}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[InMemoryQueue]:
        yield self

    def _current(self, event_id: str) -> QueuedEvent:
        found = self._events.get(event_id)
        if found is None:
            raise UnknownEvent(event_id)
        return found

    async def enqueue(self, event: QueuedEvent) -> None:
        self._events[event.id] = replace(event, state=EventState.READY, lease_until=0.0)

    async def lease(self, now: float, until: float, limit: int) -> list[QueuedEvent]:
        due = sorted(
            (
                e
                for e in self._events.values()
                if (e.state is EventState.READY and e.not_before <= now)
                or (e.state is EventState.LEASED and e.lease_until <= now)
            ),
            key=lambda e: e.not_before,
        )[: max(limit, 0)]
        out = []
        for e in due:
            if e.state is EventState.READY:
                move(e.state, EventState.LEASED)
            leased = replace(e, state=EventState.LEASED, lease_until=until)
            self._events[e.id] = leased
            out.append(leased)
        return out

    async def ack(self, event_id: str, *, then: Sequence[QueuedEvent] = ()) -> None:
        move(self._current(event_id).state, EventState.DONE)
        del self._events[event_id]
        for follow in then:
            await self.enqueue(follow)

    async def retry_later(self, event: QueuedEvent) -> None:
        current = self._current(event.id)
        move(current.state, EventState.READY)
        self._events[event.id] = replace(
            current,
            state=EventState.READY,
            lease_until=0.0,
            not_before=event.not_before,
            attempts=event.attempts,
            requeues=event.requeues,
            last_result=event.last_result,
            last_error=event.last_error,
        )

    async def dead_letter(self, event_id: str, reason: str) -> None:
        current = self._current(event_id)
        move(current.state, EventState.DEAD)
        self._events[event_id] = replace(
            current, state=EventState.DEAD, lease_until=0.0, last_error=reason
        )

    async def get(self, event_id: str) -> QueuedEvent | None:
        return self._events.get(event_id)

    async def next_due(self) -> float | None:
        due = [e.not_before for e in self._events.values() if e.state is EventState.READY]
        return min(due) if due else None

    async def depths(self, now: float) -> list[Depth]:
        groups: dict[tuple[str, str, str], list[QueuedEvent]] = {}
        for e in self._events.values():
            groups.setdefault((e.account, e.region, e.function), []).append(e)
        out = []
        for key in sorted(groups):
            events = groups[key]
            live = [e.enqueued_at for e in events if e.state is not EventState.DEAD]
            out.append(
                Depth(
                    *key,
                    ready=sum(e.state is EventState.READY for e in events),
                    leased=sum(e.state is EventState.LEASED for e in events),
                    dead=sum(e.state is EventState.DEAD for e in events),
                    oldest_age=now - min(live) if live else 0.0,
                )
            )
        return out

    async def recover(self) -> int:
        leased = [e for e in self._events.values() if e.state is EventState.LEASED]
        for e in leased:
            self._events[e.id] = replace(e, state=EventState.READY, lease_until=0.0)
        return len(leased)
