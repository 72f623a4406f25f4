"""Concurrent executions: reserved per function, the rest shared by the account."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from brazier.model.errors import TooManyRequestsException


class AccountConcurrency:
    """Concurrent executions: a function's reservation, else the account's unreserved pool.

    Refuses past the limit at once, as Lambda does (no queueing)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Executions in progress: per (account, region, function) with a reservation, and per
        # account for the unreserved pool.
        self.in_use: dict[Hashable, int] = {}

    def lease(
        self, account: str, function: tuple[str, str], reservations: Mapping[tuple[str, str], int]
    ) -> _Lease:
        """Count one execution now (or raise 429); ``with`` the lease releases it."""
        reserved = reservations.get(function)
        key: Hashable
        if reserved is not None:
            key, limit = (account, *function), reserved
            reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
        else:
            key, limit = account, self.limit - sum(reservations.values())
            reason = "ConcurrentInvocationLimitExceeded"
        used = self.in_use.get(key, 0)
        if used >= limit:
            raise TooManyRequestsException("Rate Exceeded.", reason=reason)
        self.in_use[key] = used + 1
        return _Lease(self.in_use, key)


class _Lease:
    """A plain context manager: the invoke path pays for no generator or coroutine here."""

    __slots__ = ("_counts", "_key")

    def __init__(self, counts: dict[Hashable, int], key: Hashable) -> None:
        self._counts = counts
        self._key = key

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._counts[self._key] -= 1
