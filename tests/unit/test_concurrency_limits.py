"""Concurrent-execution leases: reserved per function, the account's pool for the rest."""

from __future__ import annotations

import pytest

from brazier.invoke.limits import AccountConcurrency
from brazier.model.errors import TooManyRequestsException

RESERVED = {("us-east-1", "reserved"): 1}


def _reason(exc: pytest.ExceptionInfo[TooManyRequestsException]) -> str | None:
    return exc.value.body().get("Reason")


def test_the_unreserved_pool_excludes_reservations_and_is_released() -> None:
    limits = AccountConcurrency(3)
    with (
        limits.lease("a", ("us-east-1", "f"), RESERVED),
        limits.lease("a", ("us-east-1", "g"), RESERVED),
    ):
        with pytest.raises(TooManyRequestsException) as full:
            limits.lease("a", ("us-east-1", "h"), RESERVED)  # 3 - 1 reserved = 2
        assert _reason(full) == "ConcurrentInvocationLimitExceeded"
        with limits.lease("b", ("us-east-1", "f"), RESERVED):  # another account: its own pool
            pass
    with pytest.raises(RuntimeError), limits.lease("a", ("us-east-1", "f"), RESERVED):
        raise RuntimeError("the invocation failed")  # released all the same
    assert limits.in_use["a"] == 0


def test_a_reservation_is_the_functions_own_limit() -> None:
    limits = AccountConcurrency(3)
    with limits.lease("a", ("us-east-1", "reserved"), RESERVED):
        with pytest.raises(TooManyRequestsException) as full:
            limits.lease("a", ("us-east-1", "reserved"), RESERVED)
        assert _reason(full) == "ReservedFunctionConcurrentInvocationLimitExceeded"
        with limits.lease("a", ("us-east-1", "other"), RESERVED):  # the pool is untouched
            pass
    with limits.lease("a", ("us-east-1", "reserved"), RESERVED):
        pass
