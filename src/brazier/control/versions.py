"""Versions and aliases: immutable snapshots of $LATEST, and named, weighted pointers to them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import replace

from brazier.control.functions import FunctionService, new_revision
from brazier.model.aliases import Alias
from brazier.model.arns import LATEST, function_arn, resolve_ref
from brazier.model.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from brazier.model.functions import FunctionVersion, Lifecycle, State, UpdateStatus
from brazier.model.identity import Caller
from brazier.store.base import MetadataStore

_NUMERIC = re.compile(r"^[0-9]+$")


def _published_lifecycle() -> Lifecycle:
    return Lifecycle(
        state=State.ACTIVE,
        state_reason=None,
        state_reason_code=None,
        update=UpdateStatus.SUCCESSFUL,
    )


class VersionService:
    def __init__(self, store: MetadataStore, functions: FunctionService) -> None:
        self.store = store
        self.functions = functions

    # -- versions ---------------------------------------------------------------------------------

    async def _versions(self, caller: Caller, name: str) -> list[FunctionVersion]:
        out: list[FunctionVersion] = []
        after: str | None = f"{name}\0"
        while True:
            page = await self.store.list_versions(
                caller.account, caller.region, after=after, limit=500, all_versions=True
            )
            mine = [fv for fv in page if fv.name == name]
            out += mine
            if len(mine) < len(page) or len(page) < 500:
                return out
            after = f"{name}\0{page[-1].version}"

    async def publish(
        self,
        caller: Caller,
        function: str,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> FunctionVersion:
        latest = await self.functions.get(caller, function, None)
        name = latest.name
        if latest.lifecycle.busy:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. An update is in progress for"
                f" resource: {latest.unqualified_arn}"
            )
        if revision_id is not None and revision_id != latest.revision_id:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. Call the"
                " GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        if code_sha256 is not None and code_sha256 != latest.config.code.sha256_b64:
            raise InvalidParameterValueException(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST"
                f" ({latest.config.code.sha256_b64}). Please try again with the CodeSHA256 in"
                " $LATEST."
            )
        config = latest.config
        if description is not None:
            config = replace(config, description=description)
        published = [v for v in await self._versions(caller, name) if v.version != LATEST]
        if published:
            newest = max(published, key=lambda v: int(v.version))
            # Nothing changed since the last version: Lambda answers with that version.
            if newest.config == config:
                return newest
        snapshot = replace(
            latest,
            config=config,
            revision_id=new_revision(),
            last_modified=self.functions.clock(),
            # A version of a function this host cannot run (InvalidRuntime) is as Failed as it.
            lifecycle=(
                latest.lifecycle
                if latest.lifecycle.state is State.FAILED
                else _published_lifecycle()
            ),
        )
        stored = await self.store.publish_version(snapshot)
        if stored is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name)
            )
        return stored

    async def list_versions(
        self, caller: Caller, function: str, *, marker: str | None, max_items: int | None
    ) -> tuple[list[FunctionVersion], str | None]:
        latest = await self.functions.get(caller, function, None)
        versions = await self._versions(caller, latest.name)
        start = 0
        if marker:
            keys = [v.version for v in versions]
            if marker not in keys:
                raise InvalidParameterValueException("Invalid marker: " + marker)
            start = keys.index(marker) + 1
        limit = min(max_items or 50, 50)
        page = versions[start : start + limit]
        more = start + limit < len(versions)
        return page, (page[-1].version if more and page else None)

    # -- aliases ----------------------------------------------------------------------------------

    async def _check_target(
        self, caller: Caller, name: str, version: str, weights: Mapping[str, float]
    ) -> None:
        if len(weights) > 1:
            raise InvalidParameterValueException(
                "Number of items in AdditionalVersionWeights cannot be greater than 1"
            )
        if weights and version == LATEST:
            raise InvalidParameterValueException(
                "$LATEST is not supported for an alias pointing to more than 1 version"
            )
        for extra, weight in weights.items():
            if extra == version:
                raise InvalidParameterValueException(
                    f"Invalid function version {extra}. Function version {extra} is already"
                    " included in routing configuration."
                )
            if not _NUMERIC.match(extra):
                raise ValidationException(
                    f"1 validation error detected: Value '{extra}' at"
                    " 'routingConfig.additionalVersionWeights' failed to satisfy constraint:"
                    " Map keys must satisfy constraint: [Member must satisfy regular expression"
                    " pattern: [0-9]+]"
                )
            if not 0.0 <= weight <= 1.0:
                raise ValidationException(
                    "1 validation error detected: Value at"
                    " 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map"
                    " value must satisfy constraint: [Member must have value less than or equal"
                    " to 1.0, Member must have value greater than or equal to 0.0]"
                )
        for v in (version, *weights):
            if await self.store.get_version(caller.account, caller.region, name, v) is None:
                raise ResourceNotFoundException(
                    "Function not found: " + function_arn(caller.region, caller.account, name, v)
                )

    async def _function_name(self, caller: Caller, function: str) -> str:
        name, qualifier = resolve_ref(function, None, region=caller.region, account=caller.account)
        if qualifier is not None:
            raise InvalidParameterValueException(
                "The derived qualifier from the function name does not match the specified"
                " qualifier."
            )
        if await self.store.get_version(caller.account, caller.region, name, LATEST) is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name)
            )
        return name

    async def create_alias(
        self,
        caller: Caller,
        function: str,
        alias: str,
        version: str,
        description: str = "",
        weights: Mapping[str, float] | None = None,
    ) -> Alias:
        name, _ = resolve_ref(function, None, region=caller.region, account=caller.account)
        if await self.store.get_version(caller.account, caller.region, name, LATEST) is None:
            # Lambda names the version the alias was to point at (recorded).
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name, version)
            )
        name = await self._function_name(caller, function)
        await self._check_target(caller, name, version, weights or {})
        new = Alias(
            caller.account, caller.region, name, alias, version, description,
            dict(weights or {}), str(uuid.uuid4()),
        )  # fmt: skip
        if not await self.store.put_alias(new, expected_revision=None):
            raise ResourceConflictException(f"Alias already exists: {new.arn}")
        return new

    async def get_alias(
        self, caller: Caller, function: str, alias: str, *, missing: str = "Cannot find alias arn:"
    ) -> Alias:
        """``missing``: Lambda's words for an absent alias (GetAlias: "Cannot find alias arn:",
        UpdateAlias: "Alias not found:", both recorded)."""
        name = await self._function_name(caller, function)
        found = await self.store.get_alias(caller.account, caller.region, name, alias)
        if found is None:
            arn = function_arn(caller.region, caller.account, name, alias)
            raise ResourceNotFoundException(f"{missing} {arn}")
        return found

    async def update_alias(
        self,
        caller: Caller,
        function: str,
        alias: str,
        *,
        version: str | None,
        description: str | None,
        weights: Mapping[str, float] | None,
        revision_id: str | None,
    ) -> Alias:
        current = await self.get_alias(caller, function, alias, missing="Alias not found:")
        if revision_id is not None and revision_id != current.revision_id:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. Call the"
                " GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        new = replace(
            current,
            version=current.version if version is None else version,
            description=current.description if description is None else description,
            weights=dict(current.weights if weights is None else weights),
            revision_id=str(uuid.uuid4()),
        )
        await self._check_target(caller, new.function, new.version, new.weights)
        if not await self.store.put_alias(new, expected_revision=current.revision_id):
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. Call the"
                " GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        return new

    async def delete_alias(self, caller: Caller, function: str, alias: str) -> None:
        name = await self._function_name(caller, function)
        await self.store.delete_alias(caller.account, caller.region, name, alias)

    async def list_aliases(
        self,
        caller: Caller,
        function: str,
        *,
        function_version: str | None,
        marker: str | None,
        max_items: int | None,
    ) -> tuple[list[Alias], str | None]:
        name = await self._function_name(caller, function)
        aliases = await self.store.list_aliases(caller.account, caller.region, name)
        if function_version is not None:
            aliases = [
                a for a in aliases if a.version == function_version or function_version in a.weights
            ]
        names = [a.name for a in aliases]
        start = names.index(marker) + 1 if marker in names else 0
        limit = min(max_items or 50, 50)
        page = aliases[start : start + limit]
        more = start + limit < len(aliases)
        return page, (page[-1].name if more and page else None)
