"""Destination records and DLQ messages: building the queued items, and delivering them.

A record for a destination is itself a queued item (DELIVER; DEAD_LETTER for a DLQ), stored in
the same step that finishes its event, so it survives a restart. Delivering to a function is an
async invoke of that function (a new queued INVOKE); to SQS, a message sent to the configured
SQS-compatible server. A destination that cannot be reached is retried with backoff and, after
the default event age, kept as DEAD (visible in the queue's depths), never dropped.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from brazier.control.event_config import DEFAULT_EVENT_AGE_S
from brazier.events import records
from brazier.events.backoff import backoff
from brazier.events.clock import Clock
from brazier.events.queue import AsyncQueue, Kind, QueuedEvent
from brazier.model.arns import LATEST, function_arn
from brazier.model.errors import LambdaError

log = logging.getLogger(__name__)


class MessageSender(Protocol):
    async def send(
        self, queue_arn: str, body: str, attributes: Mapping[str, Any] | None = None
    ) -> None: ...


class TargetResolver(Protocol):
    async def resolve_async_target(
        self, account: str, region: str, function: str
    ) -> tuple[str, str | None]: ...


class Deliveries:
    def __init__(
        self,
        queue: AsyncQueue,
        targets: TargetResolver,
        clock: Clock,
        sqs: MessageSender | None = None,
    ) -> None:
        self.queue = queue
        self.targets = targets
        self.clock = clock
        self.sqs = sqs

    def dead_letter(self, event: QueuedEvent, target: str, condition: str) -> QueuedEvent:
        """The DLQ gets the original event, with RequestID, ErrorCode and ErrorMessage."""
        now = self.clock.now()
        return replace(
            event,
            id=str(uuid.uuid4()),
            kind=Kind.DEAD_LETTER,
            destination=target,
            enqueued_at=now,
            not_before=now,
            attempts=0,
            requeues=0,
            last_result=records.dead_letter_attributes(
                event.request_id, condition, event.last_result
            ),
            last_error=None,
        )

    def record(
        self,
        event: QueuedEvent,
        destination: str,
        condition: str,
        count: int,
        response: bytes | None,
    ) -> QueuedEvent:
        now = self.clock.now()
        arn = function_arn(event.region, event.account, event.function, event.qualifier or LATEST)
        record = records.invocation_record(
            condition=condition,
            request_id=event.request_id,
            function_arn=arn,
            invoke_count=count,
            request_payload=event.payload,
            response=response,
            at=now,
        )
        return replace(
            event,
            id=str(uuid.uuid4()),
            kind=Kind.DELIVER,
            payload=record,
            destination=destination,
            enqueued_at=now,
            not_before=now,
            attempts=0,
            requeues=0,
            last_result=None,
            last_error=None,
        )

    async def deliver(self, event: QueuedEvent) -> None:
        destination = event.destination or ""
        service = destination.split(":")[2] if destination.count(":") >= 5 else ""
        if service == "sqs":
            await self._deliver_sqs(event, destination)
            return
        if service != "lambda":
            await self.queue.dead_letter(
                event.id, f"destinations of type {service or '?'} are not delivered yet"
            )
            return
        target_account = destination.split(":")[4]
        try:
            name, qualifier = await self.targets.resolve_async_target(
                target_account, event.region, destination
            )
        except LambdaError as exc:
            await self._delivery_failed(event, f"{exc.code}: {exc}")
            return
        now = self.clock.now()
        invoke = replace(
            event,
            id=str(uuid.uuid4()),
            kind=Kind.INVOKE,
            account=target_account,
            function=name,
            qualifier=qualifier,
            request_id=str(uuid.uuid4()),
            destination=None,
            enqueued_at=now,
            not_before=now,
            client_context=None,
            tenant_id=None,
        )
        await self.queue.ack(event.id, then=[invoke])

    async def _deliver_sqs(self, event: QueuedEvent, queue_arn: str) -> None:
        if self.sqs is None:
            await self._delivery_failed(event, "no SQS endpoint is configured (--sqs-endpoint)")
            return
        attributes = None
        if event.kind is Kind.DEAD_LETTER and event.last_result is not None:
            attributes = json.loads(event.last_result)
        try:
            await self.sqs.send(queue_arn, event.payload.decode(), attributes)
        except Exception as exc:
            await self._delivery_failed(event, f"{type(exc).__name__}: {exc}")
            return
        await self.queue.ack(event.id)

    async def _delivery_failed(self, event: QueuedEvent, why: str) -> None:
        if self.clock.now() - event.enqueued_at > DEFAULT_EVENT_AGE_S:
            log.warning("destination record %s kept undelivered: %s", event.id, why)
            await self.queue.dead_letter(event.id, why)
            return
        n = event.attempts + 1
        await self.queue.retry_later(
            replace(event, attempts=n, not_before=self.clock.now() + backoff(n), last_error=why)
        )
