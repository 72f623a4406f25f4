"""The functions service: create, read, update, delete, and the Pending -> Active lifecycle.

Creating or updating code validates the package synchronously (hostile zips are refused before
anything is stored) and stores the zip content-addressed; the function is then ``Pending`` (or
``LastUpdateStatus: InProgress``) until a background task has unpacked the code into the tree the
sandboxes mount, when it becomes ``Active``/``Successful``. A restart resumes unfinished work.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from brazier.control import code_package, rules
from brazier.control.code_gc import CodePins
from brazier.control.commands import (
    ConfigChanges,
    CreateFunction,
    UpdateFunctionCode,
    UpdateFunctionConfiguration,
)
from brazier.control.egress_tags import check_egress_tag
from brazier.control.layer_resolve import LayerResolver
from brazier.model.arns import LATEST, function_arn, parse_function_ref, resolve_ref
from brazier.model.errors import (
    InvalidParameterValueException,
    LambdaError,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from brazier.model.functions import (
    Code,
    FunctionConfig,
    FunctionVersion,
    Lifecycle,
    LoggingConfig,
    State,
    UpdateStatus,
)
from brazier.model.identity import Caller
from brazier.model.logs import own_log_group
from brazier.model.runtimes import EveryRuntime, RuntimeHost
from brazier.store.base import MetadataStore
from brazier.store.blobs import BlobStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def new_revision() -> str:
    return str(uuid.uuid4())


def _settled(lc: Lifecycle, reason: str | None, code: str) -> Lifecycle:
    """The lifecycle once a create or update has been applied: ``reason`` is None on success."""
    if reason is None:
        if lc.state in (State.PENDING, State.FAILED):
            lc = lc.to_state(State.ACTIVE)
    elif lc.state is State.PENDING or (code == "InvalidRuntime" and lc.state is not State.INACTIVE):
        lc = lc.to_state(State.FAILED, reason, code)
    if lc.update in (None, UpdateStatus.IN_PROGRESS):
        lc = (
            lc.to_update(UpdateStatus.SUCCESSFUL)
            if reason is None
            else lc.to_update(UpdateStatus.FAILED, reason, code)
        )
    return lc


class FunctionService:
    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        layers: LayerResolver,
        *,
        clock: Clock = _now,
        pins: CodePins | None = None,
        runtimes: RuntimeHost | None = None,
    ) -> None:
        self.runtimes: RuntimeHost = runtimes or EveryRuntime()
        self.store = store
        self.blobs = blobs
        self.pins = pins or CodePins()
        self.layers = layers
        self.clock = clock
        self._tasks: asyncio.TaskGroup | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = 0

    # -- lifetime -------------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FunctionService]:
        """Own the background activation tasks; resumes work left by a crash on entry."""
        async with asyncio.TaskGroup() as tg:
            self._tasks = tg
            for fv in await self.store.list_pending():
                self._schedule(fv)
            try:
                yield self
            finally:
                await self._idle.wait()
                self._tasks = None

    async def wait_settled(self) -> None:
        """Wait until no activation is in flight (tests and shutdown)."""
        await self._idle.wait()

    def _schedule(self, fv: FunctionVersion) -> None:
        if self._tasks is None:
            raise RuntimeError("FunctionService used outside running()")
        self._inflight += 1
        self._idle.clear()
        self._tasks.create_task(self._activate(fv))

    async def _activate(self, fv: FunctionVersion) -> None:
        try:
            sha = fv.config.code.sha256_hex
            reason: str | None = None
            code = "InvalidZipFileException"
            try:
                await asyncio.to_thread(self.blobs.ensure_tree, sha, self._extractor(sha))
            except Exception as exc:  # a failure here is reported on the function, not raised
                log.exception("unpacking code %s of %s failed", sha, fv.name)
                reason = str(exc)
            if reason is None:
                # A runtime this host lacks: the function is created (or updated), then Failed
                # with InvalidRuntime and a reason naming the fix; never an error at Invoke.
                reason = await asyncio.to_thread(self.runtimes.missing, fv.config.runtime)
                code = "InvalidRuntime"
            current = await self.store.get_version(fv.account, fv.region, fv.name, fv.version)
            if current is None or current.revision_id != fv.revision_id:
                return  # deleted or changed meanwhile; the newer change schedules its own task
            lc = _settled(current.lifecycle, reason, code)
            done = replace(current, lifecycle=lc, revision_id=new_revision())
            await self.store.replace_version(done, expected_revision=current.revision_id)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    def _extractor(self, sha: str) -> Callable[[Path], None]:
        def extract(dest: Path) -> None:
            code_package.extract_zip(self.blobs.read(sha), dest)

        return extract

    # -- helpers --------------------------------------------------------------------------------

    @asynccontextmanager
    async def _ingest(self, zip_file: bytes | None) -> AsyncIterator[Code]:
        """Store the zip and yield its ``Code``: commit the metadata inside the block, which
        keeps the blob from being collected until it is referenced."""
        if not zip_file:
            raise InvalidParameterValueException("Uploaded file must be a non-empty zip")
        code_package.check_zip_size(len(zip_file))
        info = await asyncio.to_thread(code_package.inspect_zip, zip_file)
        async with self.pins.pin(info.sha256_hex):
            await asyncio.to_thread(self.blobs.put, zip_file)
            yield Code(
                sha256_hex=info.sha256_hex,
                sha256_b64=info.sha256_b64,
                size=info.size,
                unzipped_size=info.unzipped_size,
            )

    @staticmethod
    def _apply(
        base: FunctionConfig, ch: ConfigChanges, name: str, caller: Caller
    ) -> FunctionConfig:
        rules.check_limits(
            ch.memory_size,
            ch.timeout,
            ch.ephemeral_storage,
        )
        if ch.runtime is not None:
            rules.check_runtime(ch.runtime)
        if ch.environment is not None:
            rules.check_environment(ch.environment)
        if ch.architectures is not None:
            rules.check_architectures(ch.architectures)
        logging_cfg = base.logging
        if ch.logging is not None:
            lg = ch.logging
            fmt = lg.log_format or logging_cfg.log_format
            app_level = lg.application_log_level or logging_cfg.application_log_level
            sys_level = lg.system_log_level or logging_cfg.system_log_level
            if fmt == "JSON":
                app_level = app_level or "INFO"
                sys_level = sys_level or "INFO"
            elif lg.application_log_level or lg.system_log_level:
                raise InvalidParameterValueException(
                    "Application log level and system log level can only be set when the log"
                    " format is JSON."
                )
            else:
                app_level = sys_level = None
            logging_cfg = LoggingConfig(
                log_format=fmt,
                application_log_level=app_level,
                system_log_level=sys_level,
                log_group=(
                    own_log_group(lg.log_group, account=caller.account, region=caller.region)
                    if lg.log_group
                    else logging_cfg.log_group or f"/aws/lambda/{name}"
                ),
            )
        pick = {
            k: v
            for k, v in {
                "runtime": ch.runtime,
                "handler": ch.handler,
                "role": ch.role,
                "description": ch.description,
                "timeout": ch.timeout,
                "memory_size": ch.memory_size,
                "environment": ch.environment,
                "environment_set": None if ch.environment is None else True,
                "ephemeral_storage": ch.ephemeral_storage,
                "layers": ch.layers,
                "tracing_mode": ch.tracing_mode,
                "architectures": ch.architectures,
                "dead_letter_target": ch.dead_letter_target,
                "kms_key_arn": ch.kms_key_arn,
            }.items()
            if v is not None
        }
        return replace(base, logging=logging_cfg, **pick)  # type: ignore[arg-type]

    async def _with_layers(
        self, caller: Caller, config: FunctionConfig, requested: tuple[str, ...] | None
    ) -> FunctionConfig:
        """Resolve newly configured layers (numbers or semver ranges) to concrete versions, and
        check code plus layers against the 250 MB unzipped limit."""
        if requested is None:
            resolved = await self.layers.pinned(config.layers)
        else:
            resolved = await self.layers.resolve_for_function(caller, requested, config.runtime)
            config = replace(
                config,
                layers=tuple(r.arn for r in resolved),
                layer_sizes=tuple(r.code_size for r in resolved),
            )
        if resolved:
            await self.layers.check_unzipped_total(resolved, config.code.unzipped_size)
        return config

    async def _latest(
        self, caller: Caller, function: str, qualifier: str | None = None
    ) -> FunctionVersion:
        name, q = resolve_ref(function, qualifier, region=caller.region, account=caller.account)
        version = q or LATEST
        fv = await self.store.get_version(caller.account, caller.region, name, version)
        if fv is None and q is not None and q != LATEST and not q.isdigit():
            alias = await self.store.get_alias(caller.account, caller.region, name, q)
            if alias is not None:
                fv = await self.store.get_version(
                    caller.account, caller.region, name, alias.version
                )
        if fv is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name, q)
            )
        return fv

    # -- operations -----------------------------------------------------------------------------

    async def create(self, caller: Caller, cmd: CreateFunction) -> FunctionVersion:
        if cmd.package_type != "Zip":
            raise InvalidParameterValueException(
                "Brazier runs Zip package functions; PackageType Image is not supported."
            )
        if cmd.config.runtime is None or cmd.config.handler is None:
            raise InvalidParameterValueException(
                "Runtime and Handler are mandatory parameters for functions created with"
                " deployment packages."
            )
        name, q = resolve_ref(cmd.name, None, region=caller.region, account=caller.account)
        if q is not None:
            raise InvalidParameterValueException(
                "The derived qualifier from the function name does not match the specified"
                " qualifier."
            )
        rules.check_function_name(name)
        rules.check_tag_count(cmd.tags or {})
        base = FunctionConfig(
            runtime=cmd.config.runtime,
            handler=cmd.config.handler,
            role=cmd.config.role or "",
            code=Code("", "", 0, 0),
            logging=LoggingConfig(log_group=f"/aws/lambda/{name}"),
        )
        config = self._apply(base, cmd.config, name, caller)
        check_egress_tag(cmd.tags)
        if await self.store.get_tags(caller.account, caller.region, name) is not None:
            raise ResourceConflictException("Function already exist: " + name)
        async with self._ingest(cmd.zip_file) as code:
            config = await self._with_layers(caller, replace(config, code=code), cmd.config.layers)
            fv = FunctionVersion(
                account=caller.account,
                region=caller.region,
                name=name,
                version=LATEST,
                config=config,
                revision_id=new_revision(),
                last_modified=self.clock(),
                lifecycle=Lifecycle(),
            )
            if not await self.store.create_function(fv, cmd.tags):
                raise ResourceConflictException("Function already exist: " + name)
        self._schedule(fv)
        if cmd.publish:
            # Version 1 exists at once, Pending like $LATEST, and becomes Active with it.
            published = await self.store.publish_version(replace(fv, revision_id=new_revision()))
            if published is not None:
                self._schedule(published)
                return published
        return fv

    async def get(self, caller: Caller, function: str, qualifier: str | None) -> FunctionVersion:
        return await self._latest(caller, function, qualifier)

    async def list(
        self, caller: Caller, *, marker: str | None, max_items: int | None, all_versions: bool
    ) -> tuple[list[FunctionVersion], str | None]:
        limit = min(max_items or 50, 50)
        after: str | None = None
        if marker:
            try:
                after = base64.urlsafe_b64decode(marker.encode()).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise InvalidParameterValueException("Invalid marker: " + marker) from exc
        page = await self.store.list_versions(
            caller.account, caller.region, after=after, limit=limit + 1, all_versions=all_versions
        )
        next_marker = None
        if len(page) > limit:
            page = page[:limit]
            last = page[-1]
            next_marker = base64.urlsafe_b64encode(f"{last.name}\0{last.version}".encode()).decode()
        return page, next_marker

    def _check_ready(self, fv: FunctionVersion) -> None:
        if fv.lifecycle.busy:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. An update is in progress for"
                f" resource: {fv.unqualified_arn}"
            )

    @staticmethod
    def _check_revision(fv: FunctionVersion, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != fv.revision_id:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. Call the"
                " GetFunction/GetAlias API to retrieve the latest Revision Id"
            )

    async def _commit_update(self, old: FunctionVersion, config: FunctionConfig) -> FunctionVersion:
        lc = old.lifecycle.to_update(
            UpdateStatus.IN_PROGRESS, "The function is being created.", "Creating"
        )
        new = replace(
            old,
            config=config,
            lifecycle=lc,
            revision_id=new_revision(),
            last_modified=self.clock(),
        )
        if not await self.store.replace_version(new, expected_revision=old.revision_id):
            raise ResourceConflictException(
                "The operation cannot be performed at this time. An update is in progress for"
                f" resource: {old.unqualified_arn}"
            )
        self._schedule(new)
        return new

    async def update_configuration(
        self, caller: Caller, cmd: UpdateFunctionConfiguration
    ) -> FunctionVersion:
        fv = await self._latest(caller, cmd.function)
        if fv.version != LATEST:
            raise InvalidParameterValueException("Only $LATEST can be updated.")
        self._check_revision(fv, cmd.revision_id)
        self._check_ready(fv)
        config = self._apply(fv.config, cmd.config, fv.name, caller)
        config = await self._with_layers(caller, config, cmd.config.layers)
        return await self._commit_update(fv, config)

    async def update_code(self, caller: Caller, cmd: UpdateFunctionCode) -> FunctionVersion:
        fv = await self._latest(caller, cmd.function)
        self._check_revision(fv, cmd.revision_id)
        self._check_ready(fv)
        async with self._ingest(cmd.zip_file) as code:
            config = await self._with_layers(caller, replace(fv.config, code=code), None)
            if cmd.architectures is not None:
                rules.check_architectures(cmd.architectures)
                config = replace(config, architectures=cmd.architectures)
            if cmd.dry_run:
                return replace(fv, config=config)
            updated = await self._commit_update(fv, config)
        if updated.config.code.sha256_hex != fv.config.code.sha256_hex:
            self.pins.released()  # the old code may be unreferenced now
        return updated

    async def delete(self, caller: Caller, function: str, qualifier: str | None) -> None:
        name, q = resolve_ref(function, qualifier, region=caller.region, account=caller.account)
        if q == LATEST:
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function."
            )
        if q is not None and not q.isdigit():
            raise InvalidParameterValueException("Deletion of aliases is not currently supported.")
        if q is not None:
            await self._delete_version(caller, name, q)
            return
        if not await self.store.delete_function(caller.account, caller.region, name):
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name)
            )
        self.pins.released()

    async def _delete_version(self, caller: Caller, name: str, version: str) -> None:
        if await self.store.get_version(caller.account, caller.region, name, LATEST) is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name)
            )
        aliases = await self.store.list_aliases(caller.account, caller.region, name)
        using = [a.name for a in aliases if a.version == version or version in a.weights]
        if using:
            raise ResourceConflictException(
                "Unable to delete version because the following aliases reference it: "
                f"[{', '.join(using)}]"
            )
        await self.store.delete_version(caller.account, caller.region, name, version)
        self.pins.released()

    async def located_code(self, arn: str, sha: str) -> Path | None:
        """The zip a ``Code.Location`` link names, while function version ``arn`` still holds
        that code (a deleted function or version, or replaced code, ends its links)."""
        try:
            ref = parse_function_ref(arn)
        except LambdaError:
            return None
        if ref.account is None or ref.region is None:
            return None
        fv = await self.store.get_version(
            ref.account, ref.region, ref.name, ref.qualifier or LATEST
        )
        if fv is None or fv.config.code.sha256_hex != sha or not self.blobs.exists(sha):
            return None
        return self.blobs.path(sha)
