"""Function URL configuration operations."""

from __future__ import annotations

from typing import Any

from brazier.api.operations import Params, Result, Services, operation
from brazier.model.identity import Caller

_FIELDS = ("AuthType", "Cors", "InvokeMode")


def _fields(p: Params) -> dict[str, Any]:
    return {k: p[k] for k in _FIELDS if k in p}


@operation
async def create_function_url_config(s: Services, c: Caller, p: Params) -> Result:
    return await s.urls.create(c, p["FunctionName"], p.get("Qualifier"), _fields(p))


@operation
async def get_function_url_config(s: Services, c: Caller, p: Params) -> Result:
    return await s.urls.get(c, p["FunctionName"], p.get("Qualifier"))


@operation
async def update_function_url_config(s: Services, c: Caller, p: Params) -> Result:
    return await s.urls.update(c, p["FunctionName"], p.get("Qualifier"), _fields(p))


@operation
async def delete_function_url_config(s: Services, c: Caller, p: Params) -> Result:
    await s.urls.delete(c, p["FunctionName"], p.get("Qualifier"))
    return {}


@operation
async def list_function_url_configs(s: Services, c: Caller, p: Params) -> Result:
    return {"FunctionUrlConfigs": await s.urls.list(c, p["FunctionName"])}
