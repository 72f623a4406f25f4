"""Runs queued Event invocations: Lambda's retries, event age, throttles and destinations (§7).

Accepting an invocation stores it in the :class:`AsyncQueue` and wakes the dispatcher, which
leases due events and runs each on the invoke service's synchronous path (same environments,
same reserved and account concurrency). Per event:

* reserved concurrency 0: straight to failure handling, ``ZeroReservedConcurrency``, count 0;
* older than ``MaximumEventAgeInSeconds``: ``EventAgeExceeded``;
* throttled (429) or a platform error: requeued with backoff (1 s doubling, at most 5 min),
  not counted as an attempt;
* a function error, timeout or crash: retried ``MaximumRetryAttempts`` times (default 2) after
  the configured delays (``--async-retry-delays``, Lambda's 60,120 s), with the same request id;
  then ``RetriesExhausted`` (or ``EventAgeExceeded`` when the next retry would come too late);
* success: the OnSuccess destination, if any, gets the ``Success`` record.

Destination records and DLQ messages are built and delivered by ``events/delivery.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Protocol

from brazier.control.event_config import AsyncPolicy
from brazier.events import records
from brazier.events.backoff import backoff
from brazier.events.clock import Clock
from brazier.events.delivery import Deliveries, MessageSender
from brazier.events.queue import AsyncQueue, Kind, QueuedEvent
from brazier.invoke.service import AsyncInvocation
from brazier.model.errors import (
    LambdaError,
    ResourceNotFoundException,
    TooManyRequestsException,
)
from brazier.model.invocation import InvokeResult, Outcome

log = logging.getLogger(__name__)

LEASE_S = 15 * 60 + 60  # the longest function timeout, and a margin
MAX_IN_FLIGHT = 256  # events being run at once (concurrency limits still apply per function)
IDLE_POLL_S = 1.0  # look at the queue at least this often


class Invoker(Protocol):
    async def run_queued(self, inv: AsyncInvocation) -> InvokeResult: ...

    async def reserved_concurrency(self, account: str, region: str, name: str) -> int | None: ...

    async def resolve_async_target(
        self, account: str, region: str, function: str
    ) -> tuple[str, str | None]: ...


class Policies(Protocol):
    async def policy(
        self, account: str, region: str, name: str, qualifier: str | None
    ) -> AsyncPolicy: ...


class Dispatcher:
    def __init__(
        self,
        queue: AsyncQueue,
        invoker: Invoker,
        policies: Policies,
        clock: Clock,
        *,
        retry_delays: tuple[float, ...],  # Settings.async_retry_delays
        max_in_flight: int = MAX_IN_FLIGHT,
        sqs: MessageSender | None = None,
    ) -> None:
        if not retry_delays or any(d < 0 for d in retry_delays):
            raise ValueError("retry delays must be one or more non-negative numbers")
        self.queue = queue
        self.invoker = invoker
        self.policies = policies
        self.clock = clock
        self.retry_delays = retry_delays
        self.max_in_flight = max_in_flight
        self.deliveries = Deliveries(queue, invoker, clock, sqs)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    # -- accepting ---------------------------------------------------------------------------

    async def accept(self, invocation: AsyncInvocation) -> None:
        """EventAcceptor: durable when this returns (the API answers 202 after it)."""
        now = self.clock.now()
        await self.queue.enqueue(
            QueuedEvent(
                id=str(uuid.uuid4()),
                kind=Kind.INVOKE,
                account=invocation.account,
                region=invocation.region,
                function=invocation.function,
                qualifier=invocation.qualifier,
                payload=invocation.payload,
                request_id=invocation.request_id,
                enqueued_at=now,
                not_before=now,
                client_context=invocation.client_context,
                tenant_id=invocation.tenant_id,
            )
        )
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Dispatcher]:
        recovered = await self.queue.recover()
        if recovered:
            log.info("async events: %d in flight at the last stop are queued again", recovered)
        async with asyncio.TaskGroup() as tg:
            loop = tg.create_task(self._poll(tg))
            try:
                yield self
            finally:
                loop.cancel()
                for task in list(self._in_flight):
                    task.cancel()  # its event stays leased: recovered at the next start

    async def _poll(self, tg: asyncio.TaskGroup) -> None:
        while True:
            try:
                wait = await self._poll_once(tg)
            except Exception:
                log.exception("async events: reading the queue failed; retrying in a second")
                wait = IDLE_POLL_S
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            else:
                await asyncio.sleep(0)

    async def _poll_once(self, tg: asyncio.TaskGroup) -> float:
        """Start what is due; returns how long to wait for a wake-up (0: look again now)."""
        self._wake.clear()
        free = self.max_in_flight - len(self._in_flight)
        if free <= 0:
            return IDLE_POLL_S  # a finishing event wakes the loop
        now = self.clock.now()
        leased = await self.queue.lease(now, now + LEASE_S, free)
        for event in leased:
            task = tg.create_task(self._handle(event))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        if len(leased) == free:
            return 0.0
        due = await self.queue.next_due()
        if due is None:
            return IDLE_POLL_S
        return min(IDLE_POLL_S, max(due - self.clock.now(), 0.001))

    async def run_due(self) -> int:
        """Lease what is due now and handle it to the end, one by one (tests drive the pipeline
        with this and a manual clock); returns how many were handled."""
        now = self.clock.now()
        leased = await self.queue.lease(now, now + LEASE_S, self.max_in_flight)
        for event in leased:
            await self._handle(event)
        return len(leased)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _handle(self, event: QueuedEvent) -> None:
        try:
            if event.kind is Kind.INVOKE:
                await self._invoke(event)
            else:
                await self.deliveries.deliver(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("async event %s of %s failed in brazier", event.id, event.function)
            await self._requeue(event, f"{type(exc).__name__}: {exc}")

    async def _requeue(self, event: QueuedEvent, why: str) -> None:
        n = event.requeues + 1
        await self.queue.retry_later(
            replace(event, requeues=n, not_before=self.clock.now() + backoff(n), last_error=why)
        )

    # -- invocations -------------------------------------------------------------------------

    async def _invoke(self, event: QueuedEvent) -> None:
        policy = await self.policies.policy(
            event.account, event.region, event.function, event.qualifier
        )
        now = self.clock.now()
        if now - event.enqueued_at > policy.max_event_age_s:
            await self._fail(event, policy, records.EVENT_AGE_EXCEEDED, event.attempts)
            return
        reserved = await self.invoker.reserved_concurrency(
            event.account, event.region, event.function
        )
        if reserved == 0:
            await self._fail(event, policy, records.ZERO_RESERVED_CONCURRENCY, 0)
            return
        result = await self._attempt(event)
        if result is not None:
            await self._settle(event, policy, result)

    async def _attempt(self, event: QueuedEvent) -> InvokeResult | None:
        """Run the event once; None when it never ran (requeued or kept dead)."""
        try:
            return await self.invoker.run_queued(
                AsyncInvocation(
                    account=event.account,
                    region=event.region,
                    function=event.function,
                    qualifier=event.qualifier,
                    payload=event.payload,
                    request_id=event.request_id,
                    client_context=event.client_context,
                    tenant_id=event.tenant_id,
                )
            )
        except TooManyRequestsException as exc:
            await self._requeue(event, f"throttled: {exc.reason}")
        except ResourceNotFoundException as exc:
            # The function (or its qualifier) was deleted: nothing can run it again.
            await self.queue.dead_letter(event.id, str(exc))
        except LambdaError as exc:  # Pending, runtime missing...: a system error, requeued
            await self._requeue(event, f"{exc.code}: {exc}")
        return None

    async def _settle(self, event: QueuedEvent, policy: AsyncPolicy, result: InvokeResult) -> None:
        attempts = event.attempts + 1
        response = records.response_of(result)
        if result.outcome is Outcome.SUCCESS:
            then = []
            if policy.on_success:
                then.append(
                    self.deliveries.record(
                        event, policy.on_success, records.SUCCESS, attempts, response
                    )
                )
            await self.queue.ack(event.id, then=then)
            return
        done = replace(event, attempts=attempts, last_result=response, last_error="Unhandled")
        if attempts > policy.retry_attempts:
            await self._fail(done, policy, records.RETRIES_EXHAUSTED, attempts)
            return
        now = self.clock.now()
        delay = self.retry_delays[min(attempts - 1, len(self.retry_delays) - 1)]
        if now + delay - event.enqueued_at > policy.max_event_age_s:
            await self._fail(done, policy, records.EVENT_AGE_EXCEEDED, attempts)
            return
        await self.queue.retry_later(replace(done, not_before=now + delay))

    async def _fail(
        self, event: QueuedEvent, policy: AsyncPolicy, condition: str, count: int
    ) -> None:
        then = []
        if policy.on_failure is not None:
            then.append(
                self.deliveries.record(
                    event, policy.on_failure, condition, count, event.last_result
                )
            )
        if policy.dead_letter is not None:
            then.append(self.deliveries.dead_letter(event, policy.dead_letter, condition))
        if not then:
            log.info(
                "async event %s of %s discarded: %s (no OnFailure destination, no DLQ)",
                event.request_id,
                event.function,
                condition,
            )
        await self.queue.ack(event.id, then=then)
