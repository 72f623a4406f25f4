"""Function URL configurations: an HTTPS-style endpoint per function or alias.

Each URL has a 32-character id; the HTTP edge (``api/function_urls.py``) finds the target by it.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from brazier.model.arns import LATEST, function_arn, resolve_ref
from brazier.model.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from brazier.model.functions import FUNCTION_URL, lambda_timestamp
from brazier.model.identity import Caller
from brazier.model.policy import FUNCTION_URL_AUTH_TYPE, PRINCIPAL_ACCOUNT, AccessRequest, allows
from brazier.store.base import MetadataStore

_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True, slots=True)
class UrlTarget:
    account: str
    region: str
    function: str
    qualifier: str  # "" for $LATEST (unqualified), else an alias
    config: Mapping[str, Any]

    @property
    def function_arn(self) -> str:
        return function_arn(self.region, self.account, self.function, self.qualifier or None)


_NO_FUNCTION = "Function does not exist"
_NO_RESOURCE = "The resource you requested does not exist."


class UrlService:
    def __init__(self, store: MetadataStore, *, url_for: Any) -> None:
        """``url_for(url_id, region)`` renders the FunctionUrl a client is given."""
        self.store = store
        self.url_for = url_for
        self._index: dict[str, UrlTarget] = {}
        self._index_at = -1

    async def _target(
        self, caller: Caller, function: str, qualifier: str | None, *, missing: str = _NO_FUNCTION
    ) -> tuple[str, str]:
        """The function and alias (or "") a config is for. ``missing``: Lambda's words when the
        function or alias is not there (Create, Update and List: "Function does not exist"; Get
        and Delete: "The resource you requested does not exist."; recorded:
        test_url_config_exceptions)."""
        name, q = resolve_ref(function, qualifier, region=caller.region, account=caller.account)
        if await self.store.get_version(caller.account, caller.region, name, LATEST) is None:
            raise ResourceNotFoundException(missing)
        if q is None or q == LATEST:
            return name, ""
        if await self.store.get_alias(caller.account, caller.region, name, q) is None:
            raise ResourceNotFoundException(missing)
        return name, q

    def _render(self, caller: Caller, name: str, q: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FunctionUrl": self.url_for(cfg["UrlId"], caller.region),
            "FunctionArn": function_arn(caller.region, caller.account, name, q or None),
            "AuthType": cfg["AuthType"],
            "CreationTime": cfg["CreationTime"],
            "LastModifiedTime": cfg["LastModifiedTime"],
            "InvokeMode": cfg.get("InvokeMode", "BUFFERED"),
        }
        if cfg.get("Cors"):
            out["Cors"] = cfg["Cors"]
        return out

    @staticmethod
    def _check(fields: Mapping[str, Any]) -> None:
        if fields.get("InvokeMode") == "RESPONSE_STREAM":
            raise InvalidParameterValueException(
                "Brazier does not support InvokeMode RESPONSE_STREAM yet (response streaming"
                " arrives with a later release); use BUFFERED."
            )

    async def create(
        self, caller: Caller, function: str, qualifier: str | None, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._check(fields)
        name, q = await self._target(caller, function, qualifier)
        if await self.store.get_setting(caller.account, caller.region, name, FUNCTION_URL, q):
            arn = function_arn(caller.region, caller.account, name, q or None)
            raise ResourceConflictException(
                f"Failed to create function url config for [functionArn = {arn}]. Error message: "
                " FunctionUrlConfig exists for this Lambda function"
            )
        now = lambda_timestamp(datetime.now(UTC))
        cfg = {
            "UrlId": "".join(secrets.choice(_ALPHABET) for _ in range(32)),
            "AuthType": fields["AuthType"],
            "Cors": fields.get("Cors"),
            "InvokeMode": fields.get("InvokeMode") or "BUFFERED",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        await self.store.put_setting(caller.account, caller.region, name, FUNCTION_URL, cfg, q)
        return self._render(caller, name, q, cfg)

    async def _existing(
        self, caller: Caller, function: str, qualifier: str | None, *, missing: str = _NO_RESOURCE
    ) -> tuple[str, str, dict[str, Any]]:
        name, q = await self._target(caller, function, qualifier, missing=missing)
        cfg = await self.store.get_setting(caller.account, caller.region, name, FUNCTION_URL, q)
        if cfg is None:
            raise ResourceNotFoundException(_NO_RESOURCE)
        return name, q, dict(cfg)

    async def get(self, caller: Caller, function: str, qualifier: str | None) -> dict[str, Any]:
        name, q, cfg = await self._existing(caller, function, qualifier)
        return self._render(caller, name, q, cfg)

    async def update(
        self, caller: Caller, function: str, qualifier: str | None, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._check(fields)
        name, q, cfg = await self._existing(caller, function, qualifier, missing=_NO_FUNCTION)
        for key in ("AuthType", "Cors", "InvokeMode"):
            if key in fields:
                cfg[key] = fields[key]
        cfg["LastModifiedTime"] = lambda_timestamp(datetime.now(UTC))
        await self.store.put_setting(caller.account, caller.region, name, FUNCTION_URL, cfg, q)
        return self._render(caller, name, q, cfg)

    async def delete(self, caller: Caller, function: str, qualifier: str | None) -> None:
        name, q, _ = await self._existing(caller, function, qualifier)
        await self.store.put_setting(caller.account, caller.region, name, FUNCTION_URL, None, q)

    async def list(self, caller: Caller, function: str) -> list[dict[str, Any]]:
        name, _ = await self._target(caller, function, None)
        rows = await self.store.list_settings(caller.account, FUNCTION_URL)
        return [
            self._render(caller, fn, q, cfg)
            for region, fn, q, cfg in rows
            if region == caller.region and fn == name
        ]

    # -- the HTTP edge's side ---------------------------------------------------------------------

    async def find(self, url_id: str) -> UrlTarget | None:
        """The target of a URL id (cached until the store changes)."""
        if self.store.generation != self._index_at:
            self._index_at = self.store.generation
            self._index = {
                cfg["UrlId"]: UrlTarget(account, region, fn, q, cfg)
                for account, region, fn, q, cfg in await self.store.all_settings(FUNCTION_URL)
            }
        return self._index.get(url_id)

    async def public_access_allowed(self, target: UrlTarget) -> bool:
        """AuthType NONE still needs a resource policy letting "*" call lambda:InvokeFunctionUrl,
        as Lambda requires (a statement narrowed to another FunctionUrlAuthType grants nothing)."""
        return await self._url_policy_allows(target, None, "NONE")

    async def iam_access_allowed(self, target: UrlTarget, signer: Caller) -> bool:
        """AuthType AWS_IAM: a request signed for the URL's region by the function's own account,
        or by an account the resource policy grants lambda:InvokeFunctionUrl, as Lambda rules."""
        if signer.region != target.region:
            return False
        if signer.account == target.account:
            return True
        return await self._url_policy_allows(target, signer.account, "AWS_IAM")

    async def _url_policy_allows(
        self, target: UrlTarget, account: str | None, auth_type: str
    ) -> bool:
        found = await self.store.get_policy(
            target.account, target.region, target.function, target.qualifier
        )
        if found is None:
            return False
        context = {FUNCTION_URL_AUTH_TYPE: auth_type}
        if account is not None:
            context[PRINCIPAL_ACCOUNT] = account
        request = AccessRequest(
            action="lambda:InvokeFunctionUrl",
            resource=target.function_arn,
            principal_account=account,
            context=context,
        )
        return allows(found[0], request)
