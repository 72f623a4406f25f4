"""Environments' session credentials, minted and held in memory (decision 0029).

Nothing is written anywhere: a server restart ends every session, as it ends every environment.
``get`` runs on every request signed with a session key; it is one dict lookup.
"""

from __future__ import annotations

import secrets
import string
import threading

from brazier.model.sessions import SESSION_KEY_PREFIX, SESSION_TOKEN_PREFIX, SessionCredentials

__all__ = ["SessionStore"]

_KEY_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "/+"
_TOKEN_BYTES = 96  # STS tokens are several hundred characters; length is not the point


class SessionStore:
    """Live sessions by access key id. Safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, SessionCredentials] = {}

    def issue(self, account_id: str) -> SessionCredentials:
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
        token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        with self._lock:
            while True:
                key_id = SESSION_KEY_PREFIX + "".join(
                    secrets.choice(_KEY_ID_ALPHABET) for _ in range(16)
                )
                if key_id not in self._live:
                    break
            creds = SessionCredentials(key_id, secret, token, account_id)
            self._live[key_id] = creds
        return creds

    def revoke(self, access_key_id: str) -> None:
        """End a session; revoking an unknown or ended one is a no-op."""
        with self._lock:
            self._live.pop(access_key_id, None)

    def get(self, access_key_id: str) -> SessionCredentials | None:
        return self._live.get(access_key_id)

    def __len__(self) -> int:
        return len(self._live)
