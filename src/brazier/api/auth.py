"""Turn a request's SigV4 signature into the ``Caller`` the services act for."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from brazier.api.lambda_api import Authenticator
from brazier.api.sigv4 import SigningSecret, verify_request
from brazier.model.identity import Caller
from brazier.model.settings import AuthMode


class SecretLookup(Protocol):
    def get(self, access_key_id: str) -> SigningSecret | None: ...


def make_authenticator(
    *,
    mode: AuthMode,
    default_region: str,
    default_account: str,
    credentials: SecretLookup,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Authenticator:
    def authenticate(
        method: str, raw_path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Caller:
        principal = verify_request(
            method,
            raw_path,
            query,
            headers,
            body,
            lookup_secret=credentials.get,
            now=clock(),
            mode=mode,
            default_region=default_region,
            default_account_id=default_account,
        )
        return Caller(account=principal.account_id, region=principal.region)

    return authenticate
