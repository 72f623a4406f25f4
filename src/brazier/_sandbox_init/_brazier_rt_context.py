"""The Lambda context object handed to Python handlers, as awslambdaric builds it.

Part of the in-sandbox Python runtime client (see ``python_runtime``); stdlib only, Python 3.9+.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class _Fault(Exception):
    """A failure detected by the runtime, typed ``Runtime.*`` (awslambdaric's FaultException)."""

    def __init__(self, error_type: str, msg: str, trace: list[str] | None = None) -> None:
        super().__init__(msg)
        self.error_type = error_type
        self.msg = msg
        self.trace = trace


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id: Any = None, pool_id: Any = None) -> None:
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, d: dict[str, Any]) -> None:
        get = d.get
        self.installation_id = get("installation_id")
        self.app_title = get("app_title")
        self.app_version_name = get("app_version_name")
        self.app_version_code = get("app_version_code")
        self.app_package_name = get("app_package_name")

    def __repr__(self) -> str:
        return (
            f"Client([installation_id={self.installation_id},app_title={self.app_title},"
            f"app_version_name={self.app_version_name},"
            f"app_version_code={self.app_version_code},"
            f"app_package_name={self.app_package_name}])"
        )


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, d: dict[str, Any]) -> None:
        get = d.get
        self.custom = get("custom")
        self.env = get("env")
        client = get("client")
        self.client = None if client is None else Client(client)

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


_W3C_FIELDS = ("traceparent", "tracestate", "baggage")


class LambdaContext:
    """The ``context`` argument of a python handler, attribute for attribute like awslambdaric's.

    A plain class with ``__dict__`` (not ``__slots__``): some libraries attach attributes to it.
    """

    # Environment-derived fields are the same for every invoke of this process; they are set on the
    # class once by ``main`` so ``__init__`` only stores what changes per invoke.
    function_name: str | None = None
    function_version: str | None = None
    memory_limit_in_mb: str | None = None
    log_group_name: str | None = None
    log_stream_name: str | None = None

    def __init__(
        self,
        aws_request_id: str,
        invoked_function_arn: str | None,
        deadline_ms: int,
        client_context: ClientContext | None = None,
        identity: CognitoIdentity | None = None,
        tenant_id: str | None = None,
        w3c: dict[str, str] | None = None,
    ) -> None:
        self.aws_request_id = aws_request_id
        self.invoked_function_arn = invoked_function_arn
        self.client_context = client_context
        self.identity = CognitoIdentity() if identity is None else identity
        self.tenant_id = tenant_id
        self._epoch_deadline_time_in_ms = deadline_ms
        self._w3c_fields = w3c

    def get_remaining_time_in_millis(self) -> int:
        delta = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0

    def w3c(self) -> dict[str, str]:
        return dict(self._w3c_fields or {})

    def log(self, msg: Any) -> None:
        for handler in logging.getLogger().handlers:
            sink = getattr(handler, "log_sink", None)
            if sink is not None:
                sink.log(str(msg))
                return
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},"
            f"identity={self.identity},"
            f"tenant_id={self.tenant_id}])"
        )


def _parse_json_header(value: str, name: str) -> Any:
    try:
        return json.loads(value)
    except Exception as e:
        raise _Fault(
            "Runtime.LambdaContextUnmarshalError", f"Unable to parse {name} JSON: {e}"
        ) from None


def _client_context(raw: str) -> tuple[ClientContext | None, dict[str, str] | None]:
    cc = _parse_json_header(raw, "Client Context")
    w3c: dict[str, str] | None = None
    if isinstance(cc, dict) and "w3c" in cc:
        raw_w3c = cc.pop("w3c")
        if isinstance(raw_w3c, dict):
            w3c = {k: raw_w3c[k] for k in _W3C_FIELDS if isinstance(raw_w3c.get(k), str)}
    if cc is None:
        return None, w3c
    if not isinstance(cc, dict):
        # awslambdaric would fail on .get() of a non-object; report it as a context error.
        raise _Fault("Runtime.LambdaContextUnmarshalError", "Client Context is not a JSON object")
    return ClientContext(cc), w3c


def _identity(raw: str) -> CognitoIdentity:
    ident = _parse_json_header(raw, "Cognito Identity")
    if not isinstance(ident, dict):
        raise _Fault("Runtime.LambdaContextUnmarshalError", "Cognito Identity is not a JSON object")
    return CognitoIdentity(ident.get("cognitoIdentityId"), ident.get("cognitoIdentityPoolId"))


# ----------------------------------------------------------------------------------------------
# JSON encoding like awslambdaric's simplejson Encoder
# ----------------------------------------------------------------------------------------------

# simplejson emits a Decimal as its str() (RawJSON); the stdlib encoder cannot emit raw text, so a
# Decimal becomes a marker string that is spliced back after encoding. The regex only runs when a
# Decimal was seen.
