"""Temporary credentials a function's environment runs with (issue 13 item 3, decision 0029).

Like the STS credentials Lambda gives every execution environment: an ``ASIA...`` key id, a
random secret and a session token, valid only for this brazier and only while the environment
lives. They act as the function's account. The issuer keeps them in memory, so they also end
with the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "SESSION_KEY_PREFIX",
    "SESSION_TOKEN_PREFIX",
    "SessionCredentials",
    "SessionIssuer",
    "SessionLookup",
    "is_brazier_session_token",
]

SESSION_KEY_PREFIX = "ASIA"  # AWS's prefix for temporary (STS) access key ids
# Every token this server mints starts so: a request that carries one is claiming a brazier
# session, and is refused (even with --auth none) when that session is unknown or ended.
# base64 of b"!\n\tbrazier_session", shaped like STS's tokens (which start b"!\n\torigin_ec").
SESSION_TOKEN_PREFIX = "IQoJYnJhemllcl9zZXNzaW9u"  # noqa: S105 - a marker, not a secret


@dataclass(frozen=True, slots=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    account_id: str

    def as_environment(self) -> dict[str, str]:
        """The variables the AWS SDKs read (Lambda's reserved names)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"SessionCredentials({self.access_key_id!r}, account {self.account_id})"


class SessionIssuer(Protocol):
    """Mints one environment's credentials and revokes them when it ends."""

    def issue(self, account_id: str) -> SessionCredentials: ...
    def revoke(self, access_key_id: str) -> None: ...


class SessionLookup(Protocol):
    """What request verification asks: the live session with this key id, or None."""

    def get(self, access_key_id: str) -> SessionCredentials | None: ...


def is_brazier_session_token(token: str) -> bool:
    return token.startswith(SESSION_TOKEN_PREFIX)
