"""The per-environment runtime state machine, after RIE's ``core/states.go``.

::

    Started --/next--> Ready --invoke--> Running --/response--> InvocationResponse --+
       |                 ^  \\                  \\--/error----> InvocationErrorResponse -+
       |                 |   (/next again: a                                          |
       |                 |    second waiter)          RuntimeResponseSentState <------+
       |                 +-----------------/next------------------+
       +--/init/error--> InitError                 (any) --abort--> Aborted

It refuses by default: a transition exists only if it is in :data:`_TRANSITIONS`, and
:meth:`RuntimeStateMachine.transition` validates before it changes anything. State names are
RIE's, because they appear on the wire in the 403 body (``State transition from <S> to <T> failed
for runtime. Error: State transition is not allowed``).

Two RIE behaviours are kept on purpose: ``/next`` while ``Ready`` is allowed (a second waiter,
e.g. a client that re-polls on a new connection) and ``/next`` while ``Running`` is allowed and
re-delivers the current event (an idempotent retry of a ``/next`` whose reply was lost).
"""

from __future__ import annotations

import enum

from brazier.model.errors import InvalidStateTransition

__all__ = ["RuntimeEvent", "RuntimeState", "RuntimeStateMachine", "TransitionRefused"]

_NOT_ALLOWED = "State transition is not allowed"


class RuntimeState(enum.Enum):
    """Runtime states; values are RIE's state names as they appear in error messages."""

    STARTED = "Started"
    INIT_ERROR = "InitError"
    READY = "Ready"
    RUNNING = "Running"
    INVOCATION_RESPONSE = "InvocationResponse"
    INVOCATION_ERROR_RESPONSE = "InvocationErrorResponse"
    RESPONSE_SENT = "RuntimeResponseSentState"
    # Not an RIE state: the platform gave up on this runtime (timeout, crash, close).
    ABORTED = "Aborted"


class RuntimeEvent(enum.Enum):
    """What can happen to the runtime; values are the RIE target-state names of the message."""

    NEXT = "Ready"  # runtime: GET /runtime/invocation/next
    DELIVER = "Running"  # platform: an event was handed to a parked /next
    RESPONSE = "InvocationResponse"  # runtime: POST .../response (headers received)
    ERROR = "InvocationErrorResponse"  # runtime: POST .../error (headers received)
    RESPONSE_SENT = "RuntimeResponseSentState"  # platform: the result body is complete
    INIT_ERROR = "InitError"  # runtime: POST /runtime/init/error
    ABORT = "Aborted"  # platform: timeout, process death, close


S, E = RuntimeState, RuntimeEvent

_TRANSITIONS: dict[tuple[RuntimeState, RuntimeEvent], RuntimeState] = {
    (S.STARTED, E.NEXT): S.READY,
    (S.STARTED, E.INIT_ERROR): S.INIT_ERROR,
    (S.READY, E.NEXT): S.READY,
    (S.READY, E.DELIVER): S.RUNNING,
    (S.RUNNING, E.NEXT): S.RUNNING,
    (S.RUNNING, E.RESPONSE): S.INVOCATION_RESPONSE,
    (S.RUNNING, E.ERROR): S.INVOCATION_ERROR_RESPONSE,
    (S.INVOCATION_RESPONSE, E.RESPONSE_SENT): S.RESPONSE_SENT,
    (S.INVOCATION_ERROR_RESPONSE, E.RESPONSE_SENT): S.RESPONSE_SENT,
    (S.RESPONSE_SENT, E.NEXT): S.READY,
}
for _state in RuntimeState:
    if _state is not S.ABORTED:
        _TRANSITIONS[(_state, E.ABORT)] = S.ABORTED
del _state

TERMINAL_STATES = frozenset({S.INIT_ERROR, S.ABORTED})


class TransitionRefused(InvalidStateTransition):
    """The runtime asked for a transition its current state does not allow.

    ``message`` is the exact RIE text for the 403 ``InvalidStateTransition`` body.
    """

    def __init__(self, current: RuntimeState, event: RuntimeEvent) -> None:
        self.current = current
        self.event = event
        self.message = (
            f"State transition from {current.value} to {event.value} failed for runtime. "
            f"Error: {_NOT_ALLOWED}"
        )
        super().__init__(self.message)


class RuntimeStateMachine:
    """The current :class:`RuntimeState` and the only way to change it.

    Not thread-safe (one event loop owns it). Every method is O(1) and allocation-free on the
    legal path.
    """

    __slots__ = ("_state",)

    def __init__(self, initial: RuntimeState = RuntimeState.STARTED) -> None:
        self._state = initial

    @property
    def state(self) -> RuntimeState:
        """The current state."""
        return self._state

    @property
    def terminal(self) -> bool:
        """True in ``InitError`` and ``Aborted``: the runtime process is done for."""
        return self._state in TERMINAL_STATES

    def allows(self, event: RuntimeEvent) -> bool:
        """Whether ``event`` is legal now. Changes nothing."""
        return (self._state, event) in _TRANSITIONS

    def transition(self, event: RuntimeEvent) -> RuntimeState:
        """Validate ``event`` against the current state, then move; returns the *previous* state.

        Raises :class:`TransitionRefused` (and changes nothing) if the transition is not in the
        table. ``ABORT`` from ``Aborted`` is refused too; callers wanting idempotence check
        :attr:`state` first.
        """
        current = self._state
        target = _TRANSITIONS.get((current, event))
        if target is None:
            raise TransitionRefused(current, event)
        self._state = target
        return current
