"""The dispatcher in process: the in-memory queue, a manual clock and a scripted invoker, so
Lambda's schedules (60 s, 120 s, 6 h) are checked exactly without waiting for them."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from brazier.control.event_config import AsyncPolicy
from brazier.events.dispatcher import Dispatcher
from brazier.events.lifecycle import EventState, IllegalTransition, allowed, move
from brazier.events.queue import Kind, QueuedEvent
from brazier.invoke.service import AsyncInvocation
from brazier.model.errors import ResourceNotFoundException, TooManyRequestsException
from brazier.model.invocation import InvokeResult, Outcome
from brazier.testing.clock import ManualClock
from brazier.testing.queues import InMemoryQueue

ACCOUNT, REGION = "000000000000", "us-east-1"
SINK = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sink"
ERROR = json.dumps({"errorMessage": "boom", "errorType": "Exception"}).encode()


@dataclass
class ScriptedInvoker:
    """Answers run_queued from a script: an InvokeResult, or an exception to raise."""

    script: list[InvokeResult | Exception] = field(default_factory=list)
    calls: list[AsyncInvocation] = field(default_factory=list)
    reserved: int | None = None
    missing_targets: set[str] = field(default_factory=set)

    async def run_queued(self, inv: AsyncInvocation) -> InvokeResult:
        self.calls.append(inv)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def reserved_concurrency(self, account: str, region: str, name: str) -> int | None:
        return self.reserved

    async def resolve_async_target(
        self, account: str, region: str, function: str
    ) -> tuple[str, str | None]:
        if function in self.missing_targets:
            raise ResourceNotFoundException(f"Function not found: {function}")
        return function.rsplit(":", 1)[-1], None


@dataclass
class FixedPolicies:
    policy_: AsyncPolicy

    async def policy(
        self, account: str, region: str, name: str, qualifier: str | None
    ) -> AsyncPolicy:
        return self.policy_


def failed() -> InvokeResult:
    return InvokeResult(Outcome.FUNCTION_ERROR, ERROR, "$LATEST", b"")


def ok(body: bytes = b'{"r": 1}') -> InvokeResult:
    return InvokeResult(Outcome.SUCCESS, body, "$LATEST", b"")


def throttle() -> TooManyRequestsException:
    return TooManyRequestsException("Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded")


_ids = itertools.count()


class Rig:
    def __init__(self, policy: AsyncPolicy, *script: InvokeResult | Exception) -> None:
        self.clock = ManualClock()
        self.queue = InMemoryQueue()
        self.invoker = ScriptedInvoker(list(script))
        self.dispatcher = Dispatcher(
            self.queue, self.invoker, FixedPolicies(policy), self.clock, retry_delays=(60, 120)
        )

    async def send(self, payload: bytes = b'{"x": 1}') -> str:
        rid = f"req-{next(_ids)}"
        await self.dispatcher.accept(AsyncInvocation(ACCOUNT, REGION, "fn", None, payload, rid))
        return rid

    async def at(self, seconds: float) -> int:
        """Move to ``seconds`` after the start and run what is due."""
        self.clock.advance(seconds - (self.clock.now() - 1_700_000_000.0))
        return await self.dispatcher.run_due()

    async def only(self) -> QueuedEvent:
        leased = await self.queue.lease(self.clock.now() + 10**6, self.clock.now() + 10**6, 10)
        assert len(leased) == 1, leased
        return leased[0]


async def test_failures_are_retried_after_60_then_120_seconds_with_one_request_id() -> None:
    rig = Rig(AsyncPolicy(on_failure=SINK), failed(), failed(), failed())
    rid = await rig.send()
    assert await rig.at(0) == 1
    assert await rig.at(59.9) == 0
    assert await rig.at(60) == 1
    assert await rig.at(179.9) == 0
    assert await rig.at(180) == 1  # third attempt fails: RetriesExhausted record queued
    assert [c.request_id for c in rig.invoker.calls] == [rid] * 3
    assert await rig.at(180) == 1  # the record is delivered: an Event invoke of the sink
    delivered = await rig.only()
    assert (delivered.kind, delivered.function) == (Kind.INVOKE, "sink")
    record = json.loads(delivered.payload)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["requestId"] == rid
    assert record["responsePayload"] == json.loads(ERROR)
    assert delivered.request_id != rid


async def test_throttles_back_off_without_counting_attempts() -> None:
    rig = Rig(AsyncPolicy(retry_attempts=0, on_success=SINK), throttle(), throttle(), ok())
    await rig.send()
    assert await rig.at(0) == 1
    assert await rig.at(0.9) == 0
    assert await rig.at(1) == 1  # second throttle: 2 s more
    assert await rig.at(2.9) == 0
    assert await rig.at(3) == 1
    await rig.at(3)
    record = json.loads((await rig.only()).payload)
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1


async def test_an_event_too_old_before_its_first_attempt_is_reported() -> None:
    rig = Rig(AsyncPolicy(max_event_age_s=60, on_failure=SINK), throttle())
    await rig.send()
    await rig.at(0)  # throttled; next try after 1 s
    await rig.at(61)  # past the maximum age: not run again
    assert len(rig.invoker.calls) == 1
    await rig.at(61)
    record = json.loads((await rig.only()).payload)
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0


async def test_a_destination_that_is_down_is_retried_then_kept_visible() -> None:
    rig = Rig(AsyncPolicy(retry_attempts=0, on_failure=SINK), failed())
    rig.invoker.missing_targets.add(SINK)
    await rig.send()
    await rig.at(0)  # fails: a record to deliver
    await rig.at(0)  # the sink is missing: retried later
    (depth,) = await rig.queue.depths(rig.clock.now())
    assert (depth.ready, depth.dead) == (1, 0)
    await rig.at(3600)
    await rig.at(6 * 3600 + 1)  # past the default event age: kept as DEAD, never dropped
    (depth,) = await rig.queue.depths(rig.clock.now())
    assert (depth.ready, depth.leased, depth.dead) == (0, 0, 1)
    rig.invoker.missing_targets.clear()
    assert await rig.at(7 * 3600) == 0  # dead stays dead (visible), not re-sent


async def test_an_event_of_a_deleted_function_is_kept_dead() -> None:
    rig = Rig(AsyncPolicy(), ResourceNotFoundException("Function not found: fn"))
    await rig.send()
    await rig.at(0)
    (depth,) = await rig.queue.depths(rig.clock.now())
    assert depth.dead == 1


async def test_zero_reserved_concurrency_never_runs() -> None:
    rig = Rig(AsyncPolicy(on_failure=SINK))
    rig.invoker.reserved = 0
    await rig.send()
    await rig.at(0)
    await rig.at(0)
    record = json.loads((await rig.only()).payload)
    assert record["requestContext"]["condition"] == "ZeroReservedConcurrency"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in record
    assert rig.invoker.calls == []


async def test_the_running_dispatcher_starts_an_accepted_event_at_once() -> None:
    import asyncio

    rig = Rig(AsyncPolicy(), ok(), ok())
    async with rig.dispatcher.running():
        for _ in range(2):
            before = len(rig.invoker.calls)
            await rig.send()
            for _ in range(200):
                if len(rig.invoker.calls) > before:
                    break
                await asyncio.sleep(0.005)
        assert len(rig.invoker.calls) == 2
    assert await rig.queue.depths(rig.clock.now()) == []


@dataclass
class RecordingSender:
    sent: list[tuple[str, str, Any]] = field(default_factory=list)
    down: bool = False

    async def send(self, queue_arn: str, body: str, attributes: Any = None) -> None:
        if self.down:
            raise ConnectionError("connection refused")
        self.sent.append((queue_arn, body, attributes))


DLQ = f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"
FAILURES = f"arn:aws:sqs:{REGION}:{ACCOUNT}:failures"


async def test_a_failed_event_goes_to_both_its_destination_and_its_dlq() -> None:
    rig = Rig(AsyncPolicy(retry_attempts=0, on_failure=FAILURES, dead_letter=DLQ), failed())
    sender = RecordingSender(down=True)
    rig.dispatcher.deliveries.sqs = sender
    rid = await rig.send(b'{"orig": 1}')
    await rig.at(0)
    await rig.at(0)  # both deliveries find the server down: kept, retried
    assert sender.sent == []
    sender.down = False
    assert await rig.at(10) == 2
    by_queue = {arn: (body, attrs) for arn, body, attrs in sender.sent}
    record = json.loads(by_queue[FAILURES][0])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    body, attrs = by_queue[DLQ]
    assert json.loads(body) == {"orig": 1}
    assert attrs == {
        "RequestID": {"DataType": "String", "StringValue": rid},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": "boom"},
    }
    assert await rig.queue.depths(rig.clock.now()) == []


@pytest.mark.parametrize("current", list(EventState))
@pytest.mark.parametrize("to", list(EventState))
def test_the_lifecycle_table_refuses_everything_it_does_not_list(
    current: EventState, to: EventState
) -> None:
    expected = {
        (EventState.READY, EventState.LEASED),
        (EventState.LEASED, EventState.READY),
        (EventState.LEASED, EventState.DONE),
        (EventState.LEASED, EventState.DEAD),
    }
    assert allowed(current, to) == ((current, to) in expected)
    if (current, to) in expected:
        assert move(current, to) is to
    else:
        with pytest.raises(IllegalTransition):
            move(current, to)
