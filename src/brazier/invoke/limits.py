"""Concurrent executions: reserved per function, the rest shared by the account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from brazier.model.errors import TooManyRequestsException


class AccountConcurrency:
    """Concurrent executions: a function's reservation, else the account's unreserved pool.

    Refuses past the limit at once, as Lambda does (no queueing)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use: dict[tuple[str, str, str], int] = {}  # per reserved function
        self.unreserved_in_use: dict[str, int] = {}  # per account

    @asynccontextmanager
    async def lease(
        self, account: str, function: tuple[str, str], reservations: Mapping[tuple[str, str], int]
    ) -> AsyncIterator[None]:
        reserved = reservations.get(function)
        if reserved is not None:
            key = (account, *function)
            used = self.in_use.get(key, 0)
            if used >= reserved:
                raise TooManyRequestsException(
                    "Rate Exceeded.", reason="ReservedFunctionConcurrentInvocationLimitExceeded"
                )
            self.in_use[key] = used + 1
            try:
                yield
            finally:
                self.in_use[key] -= 1
            return
        pool = self.limit - sum(reservations.values())
        used = self.unreserved_in_use.get(account, 0)
        if used >= pool:
            raise TooManyRequestsException(
                "Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded"
            )
        self.unreserved_in_use[account] = used + 1
        try:
            yield
        finally:
            self.unreserved_in_use[account] -= 1
