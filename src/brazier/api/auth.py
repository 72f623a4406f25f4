"""Turn a request's SigV4 signature into the ``Caller`` the services act for."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from brazier.api.lambda_api import Authenticator
from brazier.api.sigv4 import (
    SIGNATURE_MISMATCH,
    PayloadDigest,
    SigningSecret,
    verify_request,
)
from brazier.model.errors import InvalidSignatureException
from brazier.model.identity import Caller
from brazier.model.sessions import SessionCredentials, SessionLookup
from brazier.model.settings import AuthMode

# True while serving a request whose client is an environment (decision 0029): such requests are
# always verified as in ``sigv4`` mode, so that with ``--auth none`` a function still cannot act
# unsigned (as the default account) or with a made-up key; only its session, or a real key.
_FROM_SANDBOX: ContextVar[bool] = ContextVar("brazier_from_sandbox", default=False)


def sandbox_callers_sign(app: ASGIApp, sandboxes: ipaddress.IPv4Network) -> ASGIApp:
    """Mark requests from ``sandboxes`` (the environments' addresses: DNAT to the API keeps the
    source) for full verification by every authenticator of ``app``."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        inside = False
        if client:
            try:
                inside = ipaddress.ip_address(client[0]) in sandboxes
            except ValueError:
                inside = False
        mark = _FROM_SANDBOX.set(inside)
        try:
            await app(scope, receive, send)
        finally:
            _FROM_SANDBOX.reset(mark)

    return wrapped


class SecretLookup(Protocol):
    def get(self, access_key_id: str) -> SigningSecret | None: ...


def make_authenticator(
    *,
    mode: AuthMode,
    default_region: str,
    default_account: str,
    credentials: SecretLookup,
    sessions: SessionLookup | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Authenticator:
    """``sessions``: the environments' live session credentials (decision 0029), accepted with
    their token in every mode."""

    def no_session(_access_key_id: str) -> SessionCredentials | None:
        return None

    lookup_session = sessions.get if sessions is not None else no_session

    def authenticate(
        method: str,
        raw_path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes | PayloadDigest | None,
    ) -> Caller:
        if body is None:
            return before_body(method, raw_path, query, headers)
        return check(method, raw_path, query, headers, body)

    def before_body(method: str, raw_path: str, query: str, headers: Mapping[str, str]) -> Caller:
        """Everything the headers prove, before a large body is read: the signature's presence,
        form, date and key, and the signature itself when the payload's hash is declared (as
        ``X-Amz-Content-SHA256``) or the payload is unsigned. Without a declared hash the
        signature can only be checked once the body is in; a mismatch is then not yet an error."""
        declared = headers.get("x-amz-content-sha256")
        digest = PayloadDigest(declared.lower() if declared else "0" * 64)
        if declared == "UNSIGNED-PAYLOAD":
            digest = PayloadDigest("")
        try:
            return check(method, raw_path, query, headers, digest)
        except InvalidSignatureException as exc:
            if declared is not None or exc.message != SIGNATURE_MISMATCH:
                raise
            return Caller(account="", region="")  # to be checked again with the body

    def check(
        method: str,
        raw_path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes | PayloadDigest,
    ) -> Caller:
        principal = verify_request(
            method,
            raw_path,
            query,
            headers,
            body,
            lookup_secret=credentials.get,
            now=clock(),
            mode="sigv4" if _FROM_SANDBOX.get() else mode,
            default_region=default_region,
            default_account_id=default_account,
            lookup_session=lookup_session,
        )
        return Caller(account=principal.account_id, region=principal.region)

    return authenticate
