"""EventInvokeConfig: retries, event age and destinations of asynchronous invocations.

Stored and validated here; ``brazier.events`` acts on them through :meth:`policy`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from brazier.model.arns import LATEST, function_arn, resolve_ref
from brazier.model.errors import InvalidParameterValueException, ResourceNotFoundException
from brazier.model.functions import EVENT_INVOKE_CONFIG
from brazier.model.identity import Caller
from brazier.store.base import MetadataStore

EVENT_CONFIG = EVENT_INVOKE_CONFIG
_DESTINATION = re.compile(r"^arn:aws[a-zA-Z-]*:(sqs|sns|lambda|events|s3):")


DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_EVENT_AGE_S = 21600


@dataclass(frozen=True, slots=True)
class AsyncPolicy:
    """What an asynchronous invocation of one function, version or alias is subject to."""

    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    max_event_age_s: int = DEFAULT_EVENT_AGE_S
    on_success: str | None = None  # destination ARN
    on_failure: str | None = None
    dead_letter: str | None = None  # the version's DeadLetterConfig.TargetArn


class EventConfigService:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    async def policy(
        self, account: str, region: str, name: str, qualifier: str | None
    ) -> AsyncPolicy:
        """The EventInvokeConfig of the qualifier invoked ($LATEST when unqualified), with
        Lambda's defaults for what it leaves out."""
        cfg = await self.store.get_setting(account, region, name, EVENT_CONFIG, qualifier or LATEST)
        dead_letter = await self._dead_letter_target(account, region, name, qualifier)
        if not cfg:
            return AsyncPolicy(dead_letter=dead_letter)
        destinations = cfg.get("DestinationConfig") or {}
        retries = cfg.get("MaximumRetryAttempts")
        age = cfg.get("MaximumEventAgeInSeconds")
        return AsyncPolicy(
            retry_attempts=DEFAULT_RETRY_ATTEMPTS if retries is None else int(retries),
            max_event_age_s=DEFAULT_EVENT_AGE_S if age is None else int(age),
            on_success=(destinations.get("OnSuccess") or {}).get("Destination"),
            on_failure=(destinations.get("OnFailure") or {}).get("Destination"),
            dead_letter=dead_letter,
        )

    async def _dead_letter_target(
        self, account: str, region: str, name: str, qualifier: str | None
    ) -> str | None:
        version = qualifier or LATEST
        if version != LATEST and not version.isdigit():
            alias = await self.store.get_alias(account, region, name, version)
            if alias is None:
                return None
            version = alias.version
        fv = await self.store.get_version(account, region, name, version)
        return None if fv is None else fv.config.dead_letter_target

    async def _target(
        self, caller: Caller, function: str, qualifier: str | None
    ) -> tuple[str, str]:
        name, q = resolve_ref(function, qualifier, region=caller.region, account=caller.account)
        q = q or LATEST
        exists = await self.store.get_version(caller.account, caller.region, name, q)
        if exists is None and q != LATEST and not q.isdigit():
            exists_alias = await self.store.get_alias(caller.account, caller.region, name, q)
            if exists_alias is not None:
                return name, q
        if exists is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name, q)
            )
        return name, q

    @staticmethod
    def _validate(caller: Caller, name: str, cfg: Mapping[str, Any]) -> None:
        destinations = cfg.get("DestinationConfig") or {}
        if (
            cfg.get("MaximumRetryAttempts") is None
            and cfg.get("MaximumEventAgeInSeconds") is None
            and not any(
                (destinations.get(k) or {}).get("Destination") for k in ("OnSuccess", "OnFailure")
            )
        ):
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting."
            )
        own = function_arn(caller.region, caller.account, name)
        for kind in ("OnSuccess", "OnFailure"):
            target = (destinations.get(kind) or {}).get("Destination")
            if target is None:
                continue
            if not _DESTINATION.match(target):
                raise InvalidParameterValueException(
                    f"The provided destination config DestinationConfig.{kind} is invalid."
                )
            if target == own or target.startswith(own + ":"):
                raise InvalidParameterValueException(
                    "You can't specify the function as a destination for itself."
                )

    def _render(
        self, caller: Caller, name: str, qualifier: str, cfg: Mapping[str, Any]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FunctionArn": function_arn(caller.region, caller.account, name, qualifier),
            "LastModified": cfg["LastModified"],
            "DestinationConfig": cfg.get("DestinationConfig") or {"OnSuccess": {}, "OnFailure": {}},
        }
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if cfg.get(key) is not None:
                out[key] = cfg[key]
        return out

    async def put(
        self,
        caller: Caller,
        function: str,
        qualifier: str | None,
        cfg: Mapping[str, Any],
        *,
        merge: bool,
    ) -> dict[str, Any]:
        name, q = await self._target(caller, function, qualifier)
        current = await self.store.get_setting(caller.account, caller.region, name, EVENT_CONFIG, q)
        if merge and current is None:
            arn = function_arn(caller.region, caller.account, name, q)
            raise ResourceNotFoundException(f"The function {arn} doesn't have an EventInvokeConfig")
        new = {**(current or {}), **cfg} if merge else dict(cfg)
        self._validate(caller, name, new)
        new["LastModified"] = time.time()
        await self.store.put_setting(caller.account, caller.region, name, EVENT_CONFIG, new, q)
        return self._render(caller, name, q, new)

    async def get(self, caller: Caller, function: str, qualifier: str | None) -> dict[str, Any]:
        name, q = await self._target(caller, function, qualifier)
        cfg = await self.store.get_setting(caller.account, caller.region, name, EVENT_CONFIG, q)
        if cfg is None:
            arn = function_arn(caller.region, caller.account, name, q)
            raise ResourceNotFoundException(f"The function {arn} doesn't have an EventInvokeConfig")
        return self._render(caller, name, q, cfg)

    async def delete(self, caller: Caller, function: str, qualifier: str | None) -> None:
        name, q = await self._target(caller, function, qualifier)
        if (
            await self.store.get_setting(caller.account, caller.region, name, EVENT_CONFIG, q)
            is None
        ):
            arn = function_arn(caller.region, caller.account, name, q)
            raise ResourceNotFoundException(f"The function {arn} doesn't have an EventInvokeConfig")
        await self.store.put_setting(caller.account, caller.region, name, EVENT_CONFIG, None, q)

    async def list(self, caller: Caller, function: str) -> list[dict[str, Any]]:
        name, _ = await self._target(caller, function, None)
        rows = await self.store.list_settings(caller.account, EVENT_CONFIG)
        return [
            self._render(caller, fn, q, cfg)
            for region, fn, q, cfg in rows
            if region == caller.region and fn == name
        ]
