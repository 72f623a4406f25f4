"""Turn a request's SigV4 signature into the ``Caller`` the services act for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from starlette.requests import Request

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
    def authenticate(request: Request, body: bytes) -> Caller:
        principal = verify_request(
            request.method,
            request.scope["raw_path"].decode("latin-1"),
            request.scope["query_string"].decode("latin-1"),
            request.headers,
            body,
            lookup_secret=credentials.get,
            now=clock(),
            mode=mode,
            default_region=default_region,
            default_account_id=default_account,
        )
        return Caller(account=principal.account_id, region=principal.region)

    return authenticate
