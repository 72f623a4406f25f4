"""A queued event's lifecycle: one transition table, refusing everything else.

::

    READY --lease--> LEASED --ack--> DONE (the row is removed)
      ^                |  \\--dead_letter--> DEAD (kept, visible)
      +--retry_later---+
      +--recover / lease expired--+
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final


class EventState(enum.Enum):
    READY = "ready"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"


class IllegalTransition(RuntimeError):
    """A bug: the queue was asked to move an event along a path the lifecycle has not."""

    def __init__(self, current: EventState, to: EventState) -> None:
        super().__init__(f"queued event cannot go from {current.value} to {to.value}")
        self.current, self.to = current, to


_ALLOWED: Final[Mapping[EventState, frozenset[EventState]]] = {
    EventState.READY: frozenset({EventState.LEASED}),
    EventState.LEASED: frozenset({EventState.READY, EventState.DONE, EventState.DEAD}),
    EventState.DONE: frozenset(),
    EventState.DEAD: frozenset(),
}


def move(current: EventState, to: EventState) -> EventState:
    if to not in _ALLOWED[current]:
        raise IllegalTransition(current, to)
    return to


def allowed(current: EventState, to: EventState) -> bool:
    return to in _ALLOWED[current]
