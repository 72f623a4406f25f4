"""The durable queue of asynchronous invocations: a boundary, so cluster mode can swap engines.

Single node: :class:`brazier.events.sqlite_queue.SqliteQueue`; tests and in-process service
tests: :class:`brazier.testing.queues.InMemoryQueue`. Both pass one contract suite
(``tests/events/test_queue_contract.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from brazier.events.lifecycle import EventState


class Kind(enum.Enum):
    INVOKE = "invoke"  # run the function with the payload
    DELIVER = "deliver"  # hand a destination record (the payload) to ``destination``
    DEAD_LETTER = "dead-letter"  # send the original event (payload) to a DLQ ``destination``


class UnknownEvent(KeyError):
    """No event of that id (already acknowledged, or never queued)."""


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One accepted event, or one destination record waiting for delivery."""

    id: str
    kind: Kind
    account: str
    region: str
    function: str  # bare name of the function whose queue holds it
    qualifier: str | None  # as the caller named it (None: unqualified)
    payload: bytes
    request_id: str  # the invocation's id, the same on every attempt
    enqueued_at: float  # wall time it was accepted (the event's age counts from here)
    not_before: float = 0.0  # wall time before which it is not leased again
    attempts: int = 0  # invocations made (approximateInvokeCount) or delivery tries
    requeues: int = 0  # requeues that were not attempts (throttles, system errors)
    client_context: str | None = None
    tenant_id: str | None = None
    destination: str | None = None  # DELIVER: the target's ARN
    last_result: bytes | None = None  # JSON: the last attempt's response; DLQ: its attributes
    last_error: str | None = None  # why it was requeued or dead-lettered
    state: EventState = EventState.READY
    lease_until: float = 0.0


@dataclass(frozen=True, slots=True)
class Depth:
    """What one function's queue holds now."""

    account: str
    region: str
    function: str
    ready: int  # waiting (due or scheduled for a retry)
    leased: int  # in flight
    dead: int  # kept after delivery gave up (visible, never dropped)
    oldest_age: float  # seconds since the oldest waiting or in-flight event was accepted


class AsyncQueue(Protocol):
    def running(self) -> AbstractAsyncContextManager[AsyncQueue]:
        """Own the queue's background work (the group-commit writer); use it within."""
        ...

    async def enqueue(self, event: QueuedEvent) -> None:
        """Store ``event`` (READY); durable (on disk, synced) when this returns."""
        ...

    async def lease(self, now: float, until: float, limit: int) -> list[QueuedEvent]:
        """Up to ``limit`` READY events due at ``now`` (or LEASED ones whose lease ran out),
        oldest due first, now LEASED until ``until``."""
        ...

    async def ack(self, event_id: str, *, then: Sequence[QueuedEvent] = ()) -> None:
        """A LEASED event is finished (DONE, removed); ``then`` is enqueued in the same step."""
        ...

    async def retry_later(self, event: QueuedEvent) -> None:
        """A LEASED event goes back to READY, with ``event``'s not_before, attempts, requeues,
        last_result and last_error."""
        ...

    async def dead_letter(self, event_id: str, reason: str) -> None:
        """A LEASED event is kept as DEAD with ``reason``: never dropped, visible in depths()."""
        ...

    async def get(self, event_id: str) -> QueuedEvent | None: ...

    async def next_due(self) -> float | None:
        """The earliest not_before of a READY event (None: nothing waits)."""
        ...

    async def depths(self, now: float) -> list[Depth]:
        """Per function with anything queued, in flight or dead."""
        ...

    async def recover(self) -> int:
        """After a restart: every LEASED event (its server died) goes back to READY. Returns
        how many."""
        ...
