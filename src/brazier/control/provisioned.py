"""Provisioned concurrency configurations (the invoke service's reconciler acts on them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from brazier.control.concurrency import ConcurrencyService
from brazier.model.arns import LATEST, function_arn, resolve_ref
from brazier.model.errors import (
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from brazier.model.functions import PROVISIONED_CONCURRENCY, lambda_timestamp
from brazier.model.identity import Caller
from brazier.store.base import MetadataStore


def render(caller: Caller, name: str, qualifier: str, cfg: dict[str, Any]) -> dict[str, Any]:
    out = {
        "RequestedProvisionedConcurrentExecutions": cfg["Requested"],
        "AvailableProvisionedConcurrentExecutions": cfg.get("Available", 0),
        "AllocatedProvisionedConcurrentExecutions": cfg.get("Allocated", 0),
        "Status": cfg.get("Status", "IN_PROGRESS"),
        "LastModified": cfg["LastModified"],
    }
    if cfg.get("StatusReason"):
        out["StatusReason"] = cfg["StatusReason"]
    return out


class ProvisionedService:
    def __init__(self, store: MetadataStore, *, account_limit: int | None = None) -> None:
        """``account_limit``: the account's concurrency, which provisioned configs draw on
        (None: unchecked)."""
        self.store = store
        self.concurrency = (
            None
            if account_limit is None
            else ConcurrencyService(store, account_limit=account_limit)
        )

    async def _target(
        self, caller: Caller, function: str, qualifier: str | None, *, putting: bool = False
    ) -> tuple[str, str]:
        """The function and the version or alias a config is for, in Lambda's order of checks
        and words (recorded: test_provisioned_concurrency_exceptions)."""
        name, q = resolve_ref(function, qualifier, region=caller.region, account=caller.account)
        if q is None or q == LATEST:
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function"
                " versions."
                if putting
                else "The function resource provided must be an alias or a published version."
            )
        arn = function_arn(caller.region, caller.account, name, q)
        if q.isdigit():
            if await self.store.get_version(caller.account, caller.region, name, q) is None:
                raise ResourceNotFoundException("Function not found: " + arn)
        elif await self.store.get_alias(caller.account, caller.region, name, q) is None:
            raise ResourceNotFoundException("Cannot find alias arn: " + arn)
        return name, q

    async def put(
        self, caller: Caller, function: str, qualifier: str | None, requested: int
    ) -> dict[str, Any]:
        name, q = await self._target(caller, function, qualifier, putting=True)
        await self._check_conflicts(caller, name, q)
        await self._check_account(caller, name, q, requested)
        cfg = {
            "Requested": requested,
            "Available": 0,
            "Allocated": 0,
            "Status": "IN_PROGRESS",
            "LastModified": lambda_timestamp(datetime.now(UTC)),
        }
        await self.store.put_setting(
            caller.account, caller.region, name, PROVISIONED_CONCURRENCY, cfg, q
        )
        return render(caller, name, q, cfg)

    async def _configured(self, caller: Caller, name: str) -> dict[str, int]:
        """This function's provisioned configs: qualifier -> requested executions."""
        rows = await self.store.list_settings(caller.account, PROVISIONED_CONCURRENCY)
        return {
            q: int(cfg["Requested"])
            for region, fn, q, cfg in rows
            if region == caller.region and fn == name and q
        }

    async def _check_conflicts(self, caller: Caller, name: str, q: str) -> None:
        """One config per version: through an alias or the version itself (recorded:
        test_lambda_provisioned_lifecycle)."""
        configured = set(await self._configured(caller, name)) - {q}
        if not configured:
            return
        if not q.isdigit():
            alias = await self.store.get_alias(caller.account, caller.region, name, q)
            if alias is not None and alias.version in configured:
                raise ResourceConflictException(
                    "Alias can't be used for Provisioned Concurrency configuration on an already"
                    " Provisioned version"
                )
            return
        for other in configured - {v for v in configured if v.isdigit()}:
            alias = await self.store.get_alias(caller.account, caller.region, name, other)
            if alias is not None and alias.version == q:
                raise ResourceConflictException(
                    "Version is pointed by a Provisioned Concurrency alias"
                )

    async def _check_account(self, caller: Caller, name: str, q: str, requested: int) -> None:
        """Provisioned executions come out of the account's unreserved concurrency, which keeps
        its minimum (recorded: test_provisioned_concurrency_limits)."""
        if self.concurrency is None:
            return
        reserved = (await self.concurrency.reservations(caller.account)).get((caller.region, name))
        if reserved is not None:
            # Drawn from the function's own reservation (recorded: test_reserved_provisioned_
            # overlap).
            others = sum(v for k, v in (await self._configured(caller, name)).items() if k != q)
            if others + requested > reserved:
                raise InvalidParameterValueException(
                    "Requested Provisioned Concurrency should not be greater than the"
                    " reservedConcurrentExecution for function"
                )
            return
        unreserved = await self.concurrency.unreserved(caller.account)
        if requested > unreserved:
            raise InvalidParameterValueException(
                "Specified ConcurrentExecutions for function is greater than account's"
                f" unreserved concurrency [{unreserved}]."
            )
        if unreserved - requested < self.concurrency.unreserved_minimum:
            raise InvalidParameterValueException(
                "Specified ConcurrentExecutions for function decreases account's"
                " UnreservedConcurrentExecution below its minimum value of"
                f" [{self.concurrency.unreserved_minimum}]."
            )

    async def get(self, caller: Caller, function: str, qualifier: str | None) -> dict[str, Any]:
        name, q = await self._target(caller, function, qualifier)
        cfg = await self.store.get_setting(
            caller.account, caller.region, name, PROVISIONED_CONCURRENCY, q
        )
        if cfg is None:
            raise ProvisionedConcurrencyConfigNotFoundException(
                "No Provisioned Concurrency Config found for this function"
            )
        return render(caller, name, q, cfg)

    async def delete(self, caller: Caller, function: str, qualifier: str | None) -> None:
        name, q = await self._target(caller, function, qualifier)
        await self.store.put_setting(
            caller.account, caller.region, name, PROVISIONED_CONCURRENCY, None, q
        )

    async def list(self, caller: Caller, function: str) -> list[dict[str, Any]]:
        name, _ = resolve_ref(function, None, region=caller.region, account=caller.account)
        if await self.store.get_version(caller.account, caller.region, name, LATEST) is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name)
            )
        rows = await self.store.list_settings(caller.account, PROVISIONED_CONCURRENCY)
        return [
            render(caller, fn, q, cfg)
            | {"FunctionArn": function_arn(region, caller.account, fn, q)}
            for region, fn, q, cfg in rows
            if region == caller.region and fn == name
        ]
