"""Who is asking, and where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """The account and region of a request: from its SigV4 scope and the server's settings."""

    account: str
    region: str
