"""The runtime state machine: every (state, event) pair, legal or refused, with RIE's message."""

from __future__ import annotations

import itertools

import pytest

from brazier.model.errors import InvalidStateTransition
from brazier.runtime_api.states import (
    RuntimeEvent,
    RuntimeState,
    RuntimeStateMachine,
    TransitionRefused,
)

S, E = RuntimeState, RuntimeEvent

LEGAL: dict[tuple[RuntimeState, RuntimeEvent], RuntimeState] = {
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
    **{(s, E.ABORT): S.ABORTED for s in RuntimeState if s is not S.ABORTED},
}
ALL = list(itertools.product(RuntimeState, RuntimeEvent))


@pytest.mark.parametrize(("state", "event"), [p for p in ALL if p in LEGAL])
def test_legal_transition(state: RuntimeState, event: RuntimeEvent) -> None:
    machine = RuntimeStateMachine(state)
    assert machine.allows(event)
    assert machine.transition(event) is state
    assert machine.state is LEGAL[(state, event)]


@pytest.mark.parametrize(("state", "event"), [p for p in ALL if p not in LEGAL])
def test_refused_transition_changes_nothing(state: RuntimeState, event: RuntimeEvent) -> None:
    machine = RuntimeStateMachine(state)
    assert not machine.allows(event)
    with pytest.raises(TransitionRefused) as info:
        machine.transition(event)
    assert machine.state is state
    assert isinstance(info.value, InvalidStateTransition)
    assert info.value.message == (
        f"State transition from {state.value} to {event.value} failed for runtime. "
        "Error: State transition is not allowed"
    )


def test_rie_names_on_the_wire() -> None:
    # The exact strings a runtime sees in 403 bodies (RIE core/runtime_state_names.go).
    assert [s.value for s in RuntimeState] == [
        "Started",
        "InitError",
        "Ready",
        "Running",
        "InvocationResponse",
        "InvocationErrorResponse",
        "RuntimeResponseSentState",
        "Aborted",
    ]
    refused = TransitionRefused(S.RESPONSE_SENT, E.ERROR)
    assert str(refused) == (
        "State transition from RuntimeResponseSentState to InvocationErrorResponse failed for "
        "runtime. Error: State transition is not allowed"
    )


def test_full_cycle_and_terminal_flags() -> None:
    machine = RuntimeStateMachine()
    assert machine.state is S.STARTED
    assert not machine.terminal
    for event in (E.NEXT, E.DELIVER, E.RESPONSE, E.RESPONSE_SENT, E.NEXT, E.DELIVER, E.ERROR):
        machine.transition(event)
    machine.transition(E.RESPONSE_SENT)
    assert machine.transition(E.NEXT) is S.RESPONSE_SENT
    assert machine.transition(E.ABORT) is S.READY
    assert RuntimeStateMachine(S.ABORTED).terminal
    assert RuntimeStateMachine(S.INIT_ERROR).terminal
