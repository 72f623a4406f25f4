"""Environments' session credentials, minted and held in memory (decision 0029).

Nothing is written anywhere: a server restart ends every session, as it ends every environment.
``get`` runs on every request signed with a session key; it is one dict lookup.
"""

from __future__ import annotations

import base64
import secrets
import threading

from brazier.model.sessions import SESSION_KEY_PREFIX, SESSION_TOKEN_PREFIX, SessionCredentials

__all__ = ["SessionStore"]

_TOKEN_BYTES = 96  # STS tokens are several hundred characters; length is not the point
# Minting is on the cold-start path (an environment is created there): one urandom read each,
# encoded, ~5 us, where choosing 56 characters one by one with secrets.choice cost ~0.4 ms.


class SessionStore:
    """Live sessions by access key id. Safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, SessionCredentials] = {}

    def issue(self, account_id: str) -> SessionCredentials:
        secret = base64.b64encode(secrets.token_bytes(30)).decode()  # 40 chars, AWS's alphabet
        token = SESSION_TOKEN_PREFIX + base64.b64encode(secrets.token_bytes(_TOKEN_BYTES)).decode()
        with self._lock:
            while True:
                # 16 characters of A-Z2-7 (80 random bits), as AWS key ids are upper-case.
                key_id = SESSION_KEY_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode()
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
