"""Small operations Lambda still serves: GetFunctionCodeSigningConfig (read by Terraform after
every create) and the deprecated InvokeAsync (issue 15 item 6)."""

from __future__ import annotations

from brazier.api.context import REQUEST_ID
from brazier.api.operations import Params, Result, Services, operation
from brazier.invoke.service import InvokeCommand
from brazier.model.identity import Caller


@operation
async def get_function_code_signing_config(s: Services, c: Caller, p: Params) -> Result:
    """Brazier has no code signing configurations yet: a function has none, which Lambda answers
    with the function's name and an empty CodeSigningConfigArn (both members are required)."""
    fv = await s.functions.get(c, p["FunctionName"], None)
    return {"CodeSigningConfigArn": "", "FunctionName": fv.name}


@operation
async def invoke_async(s: Services, c: Caller, p: Params) -> Result:
    """Queued like an Event invoke; answered 202 ``{"Status": 202}``."""
    reply = await s.invoke.invoke(
        c,
        InvokeCommand(
            function=p["FunctionName"],
            qualifier=None,
            invocation_type="Event",
            log_type="None",
            payload=p.get("InvokeArgs") or b"",
            client_context_b64=None,
            tenant_id=None,
            request_id=REQUEST_ID.get(None),
        ),
    )
    return {"Status": reply.status}
