"""Invoke: resolve the function, check limits, run it on a worker, shape the answer.

RequestResponse waits for the result; Event hands the invocation to an :class:`EventAcceptor`
(the durable queue of ``brazier.events``) and answers 202 once it is stored; the dispatcher later
runs it through :meth:`InvokeService.run_queued`, the same path; DryRun only checks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from brazier.invoke.limits import AccountConcurrency
from brazier.invoke.provisioning import ProvisionedEnvironments
from brazier.model import ids, jsondoc
from brazier.model.aliases import Alias
from brazier.model.arns import LATEST, function_arn, resolve_ref
from brazier.model.egress import EGRESS_TAG
from brazier.model.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ResourceConflictException,
    ResourceNotFoundException,
    RuntimeMissing,
)
from brazier.model.functions import (
    PROVISIONED_CONCURRENCY,
    RESERVED_CONCURRENCY,
    FunctionVersion,
    State,
)
from brazier.model.identity import Caller
from brazier.model.invocation import (
    PROVISIONED,
    FunctionSpec,
    InvokeRequest,
    InvokeResult,
    Outcome,
    new_trace_id,
)
from brazier.scheduler.base import Scheduler
from brazier.store.base import MetadataStore

log = logging.getLogger(__name__)

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
PROVISION_INTERVAL_S = 0.2
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
CLIENT_CONTEXT_LIMIT = 3583

CodeDirs = Callable[[str], Path]  # sha256 hex of a package -> its unpacked tree
OptDirs = Callable[[tuple[str, ...]], Awaitable[Path | None]]  # layer ARNs -> merged /opt tree


@dataclass(frozen=True, slots=True)
class InvokeCommand:
    function: str
    qualifier: str | None
    invocation_type: str  # RequestResponse | Event | DryRun
    log_type: str  # None | Tail
    payload: bytes
    client_context_b64: str | None = None
    tenant_id: str | None = None
    request_id: str | None = None  # the API request's id, reused for the invocation


@dataclass(frozen=True, slots=True)
class InvokeReply:
    status: int
    payload: bytes
    executed_version: str | None = None
    function_error: str | None = None
    log_result: str | None = None


Routed = tuple[FunctionVersion, FunctionSpec]


@dataclass(frozen=True, slots=True)
class AsyncInvocation:
    """An accepted Event invocation: what is stored to run it later (after a restart too)."""

    account: str
    region: str
    function: str  # bare name
    qualifier: str | None  # as the caller named it
    payload: bytes
    request_id: str
    client_context: str | None = None  # JSON text, already decoded
    tenant_id: str | None = None


class EventAcceptor(Protocol):
    async def accept(self, invocation: AsyncInvocation) -> None:
        """Keep ``invocation`` durably for later execution; it is stored when this returns."""
        ...


@dataclass(frozen=True, slots=True)
class _Target:
    """A resolved invocation target; ``pick`` draws the version for one invocation."""

    primary: Routed
    qualifier: str | None  # as the caller named it (the invoked ARN carries it)
    alias: Alias | None = None
    others: Mapping[str, Routed] = field(default_factory=dict)
    provisioned: bool = False  # the qualifier has provisioned concurrency

    def pick(self) -> Routed:
        if self.alias is None or not self.others:
            return self.primary
        version = self.alias.pick(random.random())  # noqa: S311 - traffic split, not secrets
        return self.others.get(version, self.primary)


class InvokeService:
    def __init__(
        self,
        store: MetadataStore,
        scheduler: Scheduler,
        code_dir: CodeDirs,
        opt_dir: OptDirs,
        *,
        account_concurrency: int,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.code_dir = code_dir
        self.opt_dir = opt_dir
        self.concurrency = AccountConcurrency(account_concurrency)
        self._revisions: dict[tuple[str, str, str, str], str] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._events: EventAcceptor | None = None
        # Resolved (version, spec) per (account, region, function, qualifier), valid while the
        # store's generation stays where it was when they were read: the warm path skips the
        # store and the spec building.
        self._resolved: dict[tuple[str, str, str, str | None], _Target] = {}
        self._resolved_at = -1
        self._reservations: dict[str, dict[tuple[str, str], int]] = {}
        self.provisioning = ProvisionedEnvironments(store, scheduler, self._provisioned_spec)

    def attach_events(self, acceptor: EventAcceptor) -> None:
        """Where Event invocations go (the composition root wires the async dispatcher)."""
        self._events = acceptor

    @asynccontextmanager
    async def running(self) -> AsyncIterator[InvokeService]:
        """Own the background work (the provisioned-concurrency reconciler)."""
        async with asyncio.TaskGroup() as tg:
            self._tasks = tg
            reconciler = tg.create_task(self._reconcile_forever())
            try:
                yield self
            finally:
                reconciler.cancel()
                self._tasks = None

    async def _resolve_cached(self, caller: Caller, cmd: InvokeCommand) -> _Target:
        generation = self.store.generation
        if generation != self._resolved_at:
            self._resolved.clear()
            self._reservations.clear()
            self._resolved_at = generation
        key = (caller.account, caller.region, cmd.function, cmd.qualifier)
        hit = self._resolved.get(key)
        if hit is None:
            hit = await self._resolve(caller, cmd)
            if len(self._resolved) < 10_000:
                self._resolved[key] = hit
        return hit

    async def _reserved(self, account: str) -> dict[tuple[str, str], int]:
        """(region, function) -> reservation; cached with the resolutions (same generation)."""
        found = self._reservations.get(account)
        if found is None:
            rows = await self.store.list_settings(account, RESERVED_CONCURRENCY)
            found = self._reservations[account] = {(r, n): int(v) for r, n, _, v in rows}
        return found

    async def _version(self, caller: Caller, name: str, version: str, shown: str | None) -> Routed:
        fv = await self.store.get_version(caller.account, caller.region, name, version)
        if fv is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name, shown)
            )
        if fv.lifecycle.state is not State.ACTIVE:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. The function is currently in"
                f" the following state: {fv.lifecycle.state.value}"
            )
        tags = await self.store.get_tags(caller.account, caller.region, name) or {}
        spec = self._spec(fv, await self.opt_dir(fv.config.layers))
        return fv, with_egress(spec, tags.get(EGRESS_TAG))

    async def _has_provisioned(self, caller: Caller, name: str, qualifier: str | None) -> bool:
        if not qualifier or qualifier == LATEST:
            return False
        found = await self.store.get_setting(
            caller.account, caller.region, name, PROVISIONED_CONCURRENCY, qualifier
        )
        return found is not None

    async def _resolve(self, caller: Caller, cmd: InvokeCommand) -> _Target:
        """What a FunctionName + Qualifier runs: one version, or an alias's weighted versions."""
        name, qualifier = resolve_ref(
            cmd.function, cmd.qualifier, region=caller.region, account=caller.account
        )
        if qualifier is None or qualifier == LATEST or qualifier.isdigit():
            # Lambda names the version it looked for: "Function not found: ...:fn:$LATEST".
            routed = await self._version(caller, name, qualifier or LATEST, qualifier or LATEST)
            return _Target(
                routed, qualifier, provisioned=await self._has_provisioned(caller, name, qualifier)
            )
        alias = await self.store.get_alias(caller.account, caller.region, name, qualifier)
        if alias is None:
            raise ResourceNotFoundException(
                "Function not found: "
                + function_arn(caller.region, caller.account, name, qualifier)
            )
        primary = await self._version(caller, name, alias.version, alias.version)
        others = {v: await self._version(caller, name, v, v) for v in alias.weights}
        provisioned = await self._has_provisioned(caller, name, qualifier)
        return _Target(primary, qualifier, alias, others, provisioned)

    def _spec(self, fv: FunctionVersion, layer_dir: Path | None) -> FunctionSpec:
        cfg = fv.config
        return FunctionSpec(
            account=fv.account,
            region=fv.region,
            name=fv.name,
            version=fv.version,
            revision_key=hashlib.sha256(_config_key(fv).encode()).hexdigest()[:32],
            runtime=cfg.runtime,
            handler=cfg.handler,
            code_dir=self.code_dir(cfg.code.sha256_hex),
            layer_dir=layer_dir,
            memory_mb=cfg.memory_size,
            timeout_s=cfg.timeout,
            ephemeral_mb=cfg.ephemeral_storage,
            environment=cfg.environment,
            log_group=fv.log_group,
            log_format=cfg.logging.log_format,
            application_log_level=cfg.logging.application_log_level,
            system_log_level=cfg.logging.system_log_level,
            tracing_mode=cfg.tracing_mode,
        )

    @staticmethod
    def _check_payload(cmd: InvokeCommand) -> None:
        size = len(cmd.payload)
        if cmd.invocation_type == "Event" and size > ASYNC_PAYLOAD_LIMIT:
            raise RequestEntityTooLargeException(
                f"{size} byte payload is too large for the Event invocation type"
                f" (limit {ASYNC_PAYLOAD_LIMIT} bytes)"
            )
        if size > SYNC_PAYLOAD_LIMIT:
            raise RequestEntityTooLargeException(
                f"Request must be smaller than {SYNC_PAYLOAD_LIMIT} bytes for the InvokeFunction"
                " operation"
            )
        if size:
            try:
                jsondoc.loads(cmd.payload)
            except ValueError as exc:
                raise InvalidRequestContentException(
                    "Could not parse request body into json: Could not parse payload into json:"
                    f" {exc}"
                ) from exc

    @staticmethod
    def _client_context(b64: str | None) -> str | None:
        if b64 is None:
            return None
        if len(b64) > CLIENT_CONTEXT_LIMIT:
            raise InvalidParameterValueException(
                "Client context must be a valid Base64-encoded JSON object no longer than 3583"
                " bytes."
            )
        try:
            text = base64.b64decode(b64, validate=True).decode()
            jsondoc.loads(text)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise InvalidParameterValueException(
                "Client context must be a valid Base64-encoded JSON object."
            ) from exc
        return text

    async def invoke(self, caller: Caller, cmd: InvokeCommand) -> InvokeReply:
        self._check_payload(cmd)
        client_context = self._client_context(cmd.client_context_b64)
        target = await self._resolve_cached(caller, cmd)
        fv = target.primary[0]
        if cmd.invocation_type == "DryRun":
            return InvokeReply(status=204, payload=b"")
        if cmd.invocation_type == "Event":
            if self._events is None:
                raise RuntimeError("InvokeService has no event acceptor attached")
            await self._events.accept(
                AsyncInvocation(
                    account=caller.account,
                    region=caller.region,
                    function=fv.name,
                    qualifier=target.qualifier,
                    payload=cmd.payload or b"{}",
                    request_id=cmd.request_id or ids.request_id(),
                    client_context=client_context,
                    tenant_id=cmd.tenant_id,
                )
            )
            return InvokeReply(status=202, payload=b"")
        result = await self._run(caller, target, cmd.request_id or ids.request_id(),
                                 cmd.payload or b"{}", client_context, cmd.tenant_id)  # fmt: skip
        return self._reply(result, tail=cmd.log_type == "Tail")

    async def run_queued(self, inv: AsyncInvocation) -> InvokeResult:
        """Run an accepted Event invocation now, on the synchronous path's environments and
        concurrency rules. Raises TooManyRequestsException past a limit (the caller requeues),
        ResourceNotFoundException when the function or qualifier is gone."""
        caller = Caller(inv.account, inv.region)
        cmd = InvokeCommand(inv.function, inv.qualifier, "Event", "None", inv.payload)
        target = await self._resolve_cached(caller, cmd)
        return await self._run(
            caller, target, inv.request_id, inv.payload, inv.client_context, inv.tenant_id
        )

    async def resolve_async_target(
        self, account: str, region: str, function: str
    ) -> tuple[str, str | None]:
        """(name, qualifier) of a function an Event invocation can go to (a destination's ARN);
        raises as Invoke would when it is missing or not Active."""
        cmd = InvokeCommand(function, None, "Event", "None", b"")
        target = await self._resolve_cached(Caller(account, region), cmd)
        return target.primary[0].name, target.qualifier

    async def reserved_concurrency(self, account: str, region: str, name: str) -> int | None:
        return (await self._reserved(account)).get((region, name))

    async def _run(
        self,
        caller: Caller,
        target: _Target,
        request_id: str,
        payload: bytes,
        client_context: str | None,
        tenant_id: str | None,
    ) -> InvokeResult:
        fv, spec = target.pick()
        worker = self.scheduler.choose(spec)
        await self._retire_stale(spec)
        invoked_arn = function_arn(caller.region, caller.account, fv.name, target.qualifier)
        request = InvokeRequest(
            spec=spec,
            request_id=request_id,
            payload=payload,
            invoked_arn=invoked_arn,
            client_context=client_context,
            tenant_id=tenant_id,
            trace_id=new_trace_id(spec.tracing_mode == "Active"),
        )
        if target.provisioned and spec.version == target.primary[1].version:
            request = replace(
                request, spec=replace(spec, initialization_type=PROVISIONED), fallback=spec
            )
        reservations = await self._reserved(caller.account)
        with self.concurrency.lease(caller.account, (fv.region, fv.name), reservations):
            try:
                result = await worker.invoke(request)
            except RuntimeMissing as exc:
                await self._mark_failed(request.spec, exc.reason)
                raise
        return result

    async def _mark_failed(self, spec: FunctionSpec, reason: str) -> None:
        """The version's runtime left this host: Failed (InvalidRuntime), as a create would be."""
        fv = await self.store.get_version(spec.account, spec.region, spec.name, spec.version)
        if fv is None or fv.lifecycle.state is not State.ACTIVE:
            return
        lc = fv.lifecycle.to_state(State.FAILED, reason, "InvalidRuntime")
        done = replace(fv, lifecycle=lc, revision_id=str(uuid.uuid4()))
        await self.store.replace_version(done, expected_revision=fv.revision_id)

    async def _provisioned_spec(self, fv: FunctionVersion) -> FunctionSpec:
        spec = self._spec(fv, await self.opt_dir(fv.config.layers))
        tags = await self.store.get_tags(fv.account, fv.region, fv.name) or {}
        return replace(with_egress(spec, tags.get(EGRESS_TAG)), initialization_type=PROVISIONED)

    async def _reconcile_forever(self) -> None:
        seen = -1
        while True:
            await asyncio.sleep(PROVISION_INTERVAL_S)
            if self.store.generation == seen and not self.provisioning.pending:
                continue
            seen = self.store.generation
            try:
                await self._retire_deleted()
                await self.provisioning.reconcile()
            except Exception:
                log.exception("provisioning environments failed; retrying")

    async def _retire_stale(self, spec: FunctionSpec) -> None:
        """When a function version's code or configuration changed, stop its old environments."""
        key = spec.key[:4]
        known = self._revisions.get(key)
        if known != spec.revision_key:
            self._revisions[key] = spec.revision_key
            if known is not None:
                for worker in self.scheduler.workers:
                    await worker.retire(key, spec.revision_key)

    async def _retire_deleted(self) -> None:
        """Stop the environments of function versions that no longer exist (deleted)."""
        for key in list(self._revisions):
            account, region, name, version = key
            if await self.store.get_version(account, region, name, version) is None:
                del self._revisions[key]
                for worker in self.scheduler.workers:
                    await worker.retire(key, None)

    @staticmethod
    def _reply(result: InvokeResult, *, tail: bool) -> InvokeReply:
        return InvokeReply(
            status=200,
            payload=result.payload,
            executed_version=result.executed_version,
            function_error="Unhandled" if result.outcome is Outcome.FUNCTION_ERROR else None,
            log_result=base64.b64encode(result.log_tail).decode() if tail else None,
        )


def with_egress(spec: FunctionSpec, egress: str | None) -> FunctionSpec:
    """``spec`` under the function's egress tag: environments of another policy are not shared
    (the policy is part of the revision key)."""
    if egress is None:
        return spec
    key = hashlib.sha256(f"{spec.revision_key}|{egress}".encode()).hexdigest()[:32]
    return replace(spec, egress=egress, revision_key=key)


def _config_key(fv: FunctionVersion) -> str:
    """What, besides code, makes environments of a version different."""
    cfg = fv.config
    return repr(
        (
            cfg.code.sha256_hex, cfg.runtime, cfg.handler, cfg.memory_size, cfg.timeout,
            cfg.ephemeral_storage, sorted(cfg.environment.items()), cfg.layers, cfg.logging,
            cfg.architectures,
        )
    )  # fmt: skip
