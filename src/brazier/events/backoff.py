"""Requeue backoff for throttles, platform errors and unreachable destinations (§7)."""

from __future__ import annotations

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0


def backoff(requeues: int) -> float:
    """Seconds before the ``requeues``-th requeue (1-based) is tried again."""
    return float(min(BACKOFF_BASE_S * 2 ** max(requeues - 1, 0), BACKOFF_CAP_S))
