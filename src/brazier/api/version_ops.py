"""Versions, aliases, reserved concurrency and event invoke configs: one function per operation."""

from __future__ import annotations

from typing import Any

from brazier.api.operations import Params, Result, Services, operation
from brazier.api.render import function_configuration, listed_configuration
from brazier.model.aliases import Alias
from brazier.model.arns import LATEST
from brazier.model.identity import Caller


def alias_configuration(alias: Alias) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AliasArn": alias.arn,
        "Name": alias.name,
        "FunctionVersion": alias.version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.weights:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
    return out


def _weights(p: Params) -> dict[str, float] | None:
    routing = p.get("RoutingConfig")
    if routing is None:
        return None
    return dict(routing.get("AdditionalVersionWeights") or {})


@operation
async def publish_version(s: Services, c: Caller, p: Params) -> Result:
    fv = await s.versions.publish(
        c,
        p["FunctionName"],
        code_sha256=p.get("CodeSha256"),
        description=p.get("Description"),
        revision_id=p.get("RevisionId"),
    )
    return function_configuration(fv)


@operation
async def list_versions_by_function(s: Services, c: Caller, p: Params) -> Result:
    page, marker = await s.versions.list_versions(
        c, p["FunctionName"], marker=p.get("Marker"), max_items=p.get("MaxItems")
    )
    out: dict[str, Any] = {
        "Versions": [listed_configuration(fv, qualified=fv.version == LATEST) for fv in page]
    }
    if marker:
        out["NextMarker"] = marker
    return out


@operation
async def create_alias(s: Services, c: Caller, p: Params) -> Result:
    alias = await s.versions.create_alias(
        c, p["FunctionName"], p["Name"], p["FunctionVersion"], p.get("Description", ""),
        _weights(p),
    )  # fmt: skip
    return alias_configuration(alias)


@operation
async def get_alias(s: Services, c: Caller, p: Params) -> Result:
    return alias_configuration(await s.versions.get_alias(c, p["FunctionName"], p["Name"]))


@operation
async def update_alias(s: Services, c: Caller, p: Params) -> Result:
    alias = await s.versions.update_alias(
        c,
        p["FunctionName"],
        p["Name"],
        version=p.get("FunctionVersion"),
        description=p.get("Description"),
        weights=_weights(p),
        revision_id=p.get("RevisionId"),
    )
    return alias_configuration(alias)


@operation
async def delete_alias(s: Services, c: Caller, p: Params) -> Result:
    await s.versions.delete_alias(c, p["FunctionName"], p["Name"])
    return {}


@operation
async def list_aliases(s: Services, c: Caller, p: Params) -> Result:
    page, marker = await s.versions.list_aliases(
        c,
        p["FunctionName"],
        function_version=p.get("FunctionVersion"),
        marker=p.get("Marker"),
        max_items=p.get("MaxItems"),
    )
    out: dict[str, Any] = {"Aliases": [alias_configuration(a) for a in page]}
    if marker:
        out["NextMarker"] = marker
    return out


@operation
async def put_function_concurrency(s: Services, c: Caller, p: Params) -> Result:
    value = await s.concurrency.put(c, p["FunctionName"], p["ReservedConcurrentExecutions"])
    return {"ReservedConcurrentExecutions": value}


@operation
async def get_function_concurrency(s: Services, c: Caller, p: Params) -> Result:
    value = await s.concurrency.get(c, p["FunctionName"])
    return {} if value is None else {"ReservedConcurrentExecutions": value}


@operation
async def delete_function_concurrency(s: Services, c: Caller, p: Params) -> Result:
    await s.concurrency.delete(c, p["FunctionName"])
    return {}


_EVENT_KEYS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")


@operation
async def put_function_event_invoke_config(s: Services, c: Caller, p: Params) -> Result:
    cfg = {k: p[k] for k in _EVENT_KEYS if k in p}
    return await s.event_configs.put(c, p["FunctionName"], p.get("Qualifier"), cfg, merge=False)


@operation
async def update_function_event_invoke_config(s: Services, c: Caller, p: Params) -> Result:
    cfg = {k: p[k] for k in _EVENT_KEYS if k in p}
    return await s.event_configs.put(c, p["FunctionName"], p.get("Qualifier"), cfg, merge=True)


@operation
async def get_function_event_invoke_config(s: Services, c: Caller, p: Params) -> Result:
    return await s.event_configs.get(c, p["FunctionName"], p.get("Qualifier"))


@operation
async def delete_function_event_invoke_config(s: Services, c: Caller, p: Params) -> Result:
    await s.event_configs.delete(c, p["FunctionName"], p.get("Qualifier"))
    return {}


@operation
async def list_function_event_invoke_configs(s: Services, c: Caller, p: Params) -> Result:
    configs = await s.event_configs.list(c, p["FunctionName"])
    return {"FunctionEventInvokeConfigs": configs}


@operation
async def put_provisioned_concurrency_config(s: Services, c: Caller, p: Params) -> Result:
    return await s.provisioned.put(
        c, p["FunctionName"], p.get("Qualifier"), p["ProvisionedConcurrentExecutions"]
    )


@operation
async def get_provisioned_concurrency_config(s: Services, c: Caller, p: Params) -> Result:
    return await s.provisioned.get(c, p["FunctionName"], p.get("Qualifier"))


@operation
async def delete_provisioned_concurrency_config(s: Services, c: Caller, p: Params) -> Result:
    await s.provisioned.delete(c, p["FunctionName"], p.get("Qualifier"))
    return {}


@operation
async def list_provisioned_concurrency_configs(s: Services, c: Caller, p: Params) -> Result:
    return {"ProvisionedConcurrencyConfigs": await s.provisioned.list(c, p["FunctionName"])}
