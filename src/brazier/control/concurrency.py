"""Reserved concurrency per function, and the account pool it carves out."""

from __future__ import annotations

from brazier.model.arns import LATEST, function_arn, resolve_ref
from brazier.model.errors import InvalidParameterValueException, ResourceNotFoundException
from brazier.model.functions import PROVISIONED_CONCURRENCY, RESERVED_CONCURRENCY
from brazier.model.identity import Caller
from brazier.store.base import MetadataStore

RESERVED = RESERVED_CONCURRENCY


class ConcurrencyService:
    def __init__(self, store: MetadataStore, *, account_limit: int) -> None:
        self.store = store
        self.account_limit = account_limit
        # Lambda keeps 100 unreserved; a smaller configured account keeps a tenth of it.
        self.unreserved_minimum = min(100, account_limit // 10)

    async def _name(self, caller: Caller, function: str, *, shown: str | None = None) -> str:
        """The function's name; ``shown``: the qualifier its not-found message names (Lambda's
        Put names ``$LATEST``, Get and Delete name the function alone)."""
        name, qualifier = resolve_ref(function, None, region=caller.region, account=caller.account)
        if qualifier is not None:
            raise InvalidParameterValueException(
                "This operation is permitted on Lambda functions only. Aliases and versions do"
                " not support this operation. Please specify either a function name or an"
                " unqualified function ARN."
            )
        if await self.store.get_version(caller.account, caller.region, name, LATEST) is None:
            raise ResourceNotFoundException(
                "Function not found: " + function_arn(caller.region, caller.account, name, shown)
            )
        return name

    async def reservations(self, account: str) -> dict[tuple[str, str], int]:
        """(region, function) -> reserved concurrent executions, for one account."""
        rows = await self.store.list_settings(account, RESERVED)
        return {(region, name): int(value) for region, name, _, value in rows}

    async def unreserved(self, account: str) -> int:
        return self.account_limit - sum((await self.reservations(account)).values())

    async def provisioned_total(self, caller: Caller, name: str) -> int:
        """The provisioned executions configured on the function's versions and aliases."""
        rows = await self.store.list_settings(caller.account, PROVISIONED_CONCURRENCY)
        return sum(
            int(cfg["Requested"])
            for region, fn, _, cfg in rows
            if region == caller.region and fn == name
        )

    async def put(self, caller: Caller, function: str, reserved: int) -> int:
        name = await self._name(caller, function, shown=LATEST)
        provisioned = await self.provisioned_total(caller, name)
        if reserved < provisioned:
            # Lambda's text, spaces included (recorded: test_reserved_provisioned_overlap).
            raise InvalidParameterValueException(
                f" ReservedConcurrentExecutions  {reserved} should not be lower than function's"
                f" total provisioned concurrency [{provisioned}]."
            )
        others = {
            k: v for k, v in (await self.reservations(caller.account)).items()
            if k != (caller.region, name)
        }  # fmt: skip
        if self.account_limit - sum(others.values()) - reserved < self.unreserved_minimum:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's"
                " UnreservedConcurrentExecution below its minimum value of"
                f" [{self.unreserved_minimum}]."
            )
        await self.store.put_setting(caller.account, caller.region, name, RESERVED, reserved)
        return reserved

    async def get(self, caller: Caller, function: str) -> int | None:
        name = await self._name(caller, function)
        value = await self.store.get_setting(caller.account, caller.region, name, RESERVED)
        return None if value is None else int(value)

    async def delete(self, caller: Caller, function: str) -> None:
        name = await self._name(caller, function)
        await self.store.put_setting(caller.account, caller.region, name, RESERVED, None)
