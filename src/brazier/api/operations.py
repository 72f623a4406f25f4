"""One small function per Lambda operation: input dict -> typed command -> service -> output."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from brazier.api.codeurls import CodeUrlSigner
from brazier.api.context import REQUEST_ID
from brazier.api.render import function_configuration, listed_configuration, named_configuration
from brazier.control.commands import (
    AddPermission,
    ConfigChanges,
    CreateFunction,
    LoggingSpec,
    UpdateFunctionCode,
    UpdateFunctionConfiguration,
)
from brazier.control.concurrency import ConcurrencyService
from brazier.control.event_config import EventConfigService
from brazier.control.functions import FunctionService
from brazier.control.layers import LayerService
from brazier.control.logs import LogService
from brazier.control.provisioned import ProvisionedService
from brazier.control.resources import (
    CODE_SIZE_UNZIPPED,
    CODE_SIZE_ZIPPED,
    TOTAL_CODE_SIZE,
    ResourceService,
)
from brazier.control.urls import UrlService
from brazier.control.versions import VersionService
from brazier.invoke.service import InvokeCommand, InvokeService
from brazier.model.arns import LATEST, function_arn, resolve_ref
from brazier.model.errors import InvalidParameterValueException
from brazier.model.identity import Caller

Params = dict[str, Any]
Result = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Services:
    functions: FunctionService
    resources: ResourceService
    code_urls: CodeUrlSigner
    invoke: InvokeService
    logs: LogService
    layers: LayerService
    versions: VersionService
    concurrency: ConcurrencyService
    event_configs: EventConfigService
    urls: UrlService
    provisioned: ProvisionedService


Handler = Callable[[Services, Caller, Params], Awaitable[Result]]
HANDLERS: dict[str, Handler] = {}


def operation(fn: Handler) -> Handler:
    name = "".join(part.capitalize() for part in fn.__name__.split("_"))
    HANDLERS[name] = fn
    return fn


def _config_changes(p: Params) -> ConfigChanges:
    lg = p.get("LoggingConfig")
    env = p.get("Environment")
    return ConfigChanges(
        runtime=p.get("Runtime"),
        handler=p.get("Handler"),
        role=p.get("Role"),
        description=p.get("Description"),
        timeout=p.get("Timeout"),
        memory_size=p.get("MemorySize"),
        environment=None if env is None else dict(env.get("Variables") or {}),
        ephemeral_storage=(p.get("EphemeralStorage") or {}).get("Size"),
        layers=None if p.get("Layers") is None else tuple(p["Layers"]),
        logging=None
        if lg is None
        else LoggingSpec(
            log_format=lg.get("LogFormat"),
            application_log_level=lg.get("ApplicationLogLevel"),
            system_log_level=lg.get("SystemLogLevel"),
            log_group=lg.get("LogGroup"),
        ),
        tracing_mode=(p.get("TracingConfig") or {}).get("Mode"),
        architectures=None if p.get("Architectures") is None else tuple(p["Architectures"]),
        dead_letter_target=(p.get("DeadLetterConfig") or {}).get("TargetArn"),
        kms_key_arn=p.get("KMSKeyArn"),
    )


def _refuse_unsupported(p: Params) -> None:
    """Settings brazier cannot honour are refused, not stored and ignored."""
    vpc = p.get("VpcConfig") or {}
    unsupported = {
        "VpcConfig": bool(vpc.get("SubnetIds") or vpc.get("SecurityGroupIds")),
        "FileSystemConfigs": bool(p.get("FileSystemConfigs")),
        "CodeSigningConfigArn": bool(p.get("CodeSigningConfigArn")),
        "ImageConfig": bool(p.get("ImageConfig")),
        "SnapStart": (p.get("SnapStart") or {}).get("ApplyOn", "None") != "None",
        "KMSKeyArn": bool(p.get("KMSKeyArn")),
    }
    names = [name for name, used in unsupported.items() if used]
    if names:
        raise InvalidParameterValueException(
            f"Brazier does not support {', '.join(names)} (yet); remove it from the request."
        )


def _zip(code: Mapping[str, Any]) -> bytes | None:
    if "S3Bucket" in code or "S3Key" in code or "ImageUri" in code:
        raise InvalidParameterValueException(
            "Brazier accepts code as ZipFile only; S3 and image code sources are not supported."
        )
    zf = code.get("ZipFile")
    return None if zf is None else bytes(zf)


@operation
async def create_function(s: Services, c: Caller, p: Params) -> Result:
    _refuse_unsupported(p)
    fv = await s.functions.create(
        c,
        CreateFunction(
            name=p["FunctionName"],
            zip_file=_zip(p["Code"]),
            config=_config_changes(p),
            package_type=p.get("PackageType", "Zip"),
            tags=p.get("Tags") or {},
            publish=bool(p.get("Publish")),
        ),
    )
    out = function_configuration(fv)
    if p.get("Publish"):
        # Recorded AWS behaviour: Version "1" with the unqualified FunctionArn.
        out = {**out, "FunctionArn": fv.unqualified_arn}
    return out


@operation
async def get_function_configuration(s: Services, c: Caller, p: Params) -> Result:
    fv = await s.functions.get(c, p["FunctionName"], p.get("Qualifier"))
    return named_configuration(fv, _named_qualifier(c, p))


def _named_qualifier(c: Caller, p: Params) -> str | None:
    """The qualifier the request named (in the ARN or the Qualifier parameter), if any."""
    _, qualifier = resolve_ref(
        p["FunctionName"], p.get("Qualifier"), region=c.region, account=c.account
    )
    return qualifier


@operation
async def get_function(s: Services, c: Caller, p: Params) -> Result:
    fv = await s.functions.get(c, p["FunctionName"], p.get("Qualifier"))
    out: dict[str, Any] = {
        "Configuration": named_configuration(fv, _named_qualifier(c, p)),
        "Code": {
            "RepositoryType": "S3",
            "Location": s.code_urls.url_for(
                fv.config.code.sha256_hex, function_arn(fv.region, fv.account, fv.name, fv.version)
            ),
        },
    }
    tags = await s.resources.list_tags(c, fv.unqualified_arn)
    if tags:
        out["Tags"] = tags
    reserved = await s.concurrency.get(c, fv.unqualified_arn)
    if reserved is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return out


@operation
async def list_functions(s: Services, c: Caller, p: Params) -> Result:
    page, marker = await s.functions.list(
        c,
        marker=p.get("Marker"),
        max_items=p.get("MaxItems"),
        all_versions=p.get("FunctionVersion") == "ALL",
    )
    every = p.get("FunctionVersion") == "ALL"
    out: dict[str, Any] = {
        # With FunctionVersion=ALL, $LATEST is listed by its qualified ARN (recorded).
        "Functions": [
            listed_configuration(fv, qualified=every and fv.version == LATEST) for fv in page
        ]
    }
    if marker:
        out["NextMarker"] = marker
    return out


@operation
async def update_function_configuration(s: Services, c: Caller, p: Params) -> Result:
    _refuse_unsupported(p)
    fv = await s.functions.update_configuration(
        c,
        UpdateFunctionConfiguration(
            function=p["FunctionName"],
            config=_config_changes(p),
            revision_id=p.get("RevisionId"),
        ),
    )
    return function_configuration(fv)


@operation
async def update_function_code(s: Services, c: Caller, p: Params) -> Result:
    fv = await s.functions.update_code(
        c,
        UpdateFunctionCode(
            function=p["FunctionName"],
            zip_file=_zip(p),
            architectures=None if p.get("Architectures") is None else tuple(p["Architectures"]),
            revision_id=p.get("RevisionId"),
            publish=bool(p.get("Publish")),
            dry_run=bool(p.get("DryRun")),
        ),
    )
    if p.get("Publish") and not p.get("DryRun"):
        await s.functions.wait_settled()
        fv = await s.versions.publish(c, fv.unqualified_arn)
    return function_configuration(fv)


@operation
async def delete_function(s: Services, c: Caller, p: Params) -> Result:
    await s.functions.delete(c, p["FunctionName"], p.get("Qualifier"))
    return {"StatusCode": 204}


@operation
async def tag_resource(s: Services, c: Caller, p: Params) -> Result:
    await s.resources.tag(c, p["Resource"], p.get("Tags") or {})
    return {}


@operation
async def untag_resource(s: Services, c: Caller, p: Params) -> Result:
    await s.resources.untag(c, p["Resource"], p["TagKeys"])
    return {}


@operation
async def list_tags(s: Services, c: Caller, p: Params) -> Result:
    return {"Tags": await s.resources.list_tags(c, p["Resource"])}


@operation
async def add_permission(s: Services, c: Caller, p: Params) -> Result:
    statement = await s.resources.add_permission(
        c,
        AddPermission(
            function=p["FunctionName"],
            qualifier=p.get("Qualifier"),
            statement_id=p["StatementId"],
            action=p["Action"],
            principal=p["Principal"],
            source_arn=p.get("SourceArn"),
            source_account=p.get("SourceAccount"),
            event_source_token=p.get("EventSourceToken"),
            principal_org_id=p.get("PrincipalOrgID"),
            function_url_auth_type=p.get("FunctionUrlAuthType"),
            revision_id=p.get("RevisionId"),
        ),
    )
    return {"Statement": json.dumps(statement, separators=(",", ":"))}


@operation
async def remove_permission(s: Services, c: Caller, p: Params) -> Result:
    await s.resources.remove_permission(
        c, p["FunctionName"], p["StatementId"], p.get("Qualifier"), p.get("RevisionId")
    )
    return {}


@operation
async def get_policy(s: Services, c: Caller, p: Params) -> Result:
    policy, revision = await s.resources.get_policy(c, p["FunctionName"], p.get("Qualifier"))
    return {"Policy": policy, "RevisionId": revision}


@operation
async def get_account_settings(s: Services, c: Caller, p: Params) -> Result:
    a = await s.resources.account_settings(c)
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": CODE_SIZE_UNZIPPED,
            "CodeSizeZipped": CODE_SIZE_ZIPPED,
            "ConcurrentExecutions": a.concurrent_executions,
            "UnreservedConcurrentExecutions": await s.concurrency.unreserved(c.account),
        },
        "AccountUsage": {"TotalCodeSize": a.total_code_size, "FunctionCount": a.function_count},
    }


@operation
async def invoke(s: Services, c: Caller, p: Params) -> Result:
    reply = await s.invoke.invoke(
        c,
        InvokeCommand(
            function=p["FunctionName"],
            qualifier=p.get("Qualifier"),
            invocation_type=p.get("InvocationType", "RequestResponse"),
            log_type=p.get("LogType", "None"),
            payload=p.get("Payload") or b"",
            client_context_b64=p.get("ClientContext"),
            tenant_id=p.get("TenantId"),
            request_id=REQUEST_ID.get(None),
        ),
    )
    return {
        "StatusCode": reply.status,
        "FunctionError": reply.function_error,
        "LogResult": reply.log_result,
        "ExecutedVersion": reply.executed_version,
        "Payload": reply.payload if reply.status == 200 else None,
    }
