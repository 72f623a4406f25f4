"""Domain values -> the output members of the Lambda API (field names exactly as AWS's)."""

from __future__ import annotations

from typing import Any

from brazier.model.functions import FunctionVersion, lambda_timestamp

_CACHE: dict[tuple[str, str, str], dict[str, Any]] = {}
_CACHE_SIZE = 4096


def function_configuration(fv: FunctionVersion) -> dict[str, Any]:
    """The ``FunctionConfiguration`` of a version. Callers must not mutate the result: versions
    are immutable and every change gets a new RevisionId, so renders are cached by it."""
    key = (fv.revision_id, fv.version, fv.region)
    out = _CACHE.get(key)
    if out is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        out = _CACHE[key] = _render(fv)
    return out


# What Lambda leaves out of a ListFunctions / ListVersionsByFunction item (recorded:
# test_list_functions, test_publish_version_on_create): the lifecycle and the runtime version.
_NOT_LISTED = frozenset({
    "State", "StateReason", "StateReasonCode", "LastUpdateStatus", "LastUpdateStatusReason",
    "LastUpdateStatusReasonCode", "RuntimeVersionConfig",
})  # fmt: skip


def listed_configuration(fv: FunctionVersion, *, qualified: bool = False) -> dict[str, Any]:
    """A version as a list item: its configuration without the members AWS omits there;
    ``qualified``: $LATEST's FunctionArn ends in ``:$LATEST`` (ListVersionsByFunction, and
    ListFunctions with FunctionVersion=ALL)."""
    out = {k: v for k, v in function_configuration(fv).items() if k not in _NOT_LISTED}
    if qualified:
        out["FunctionArn"] = f"{fv.unqualified_arn}:{fv.version}"
    return out


def named_configuration(fv: FunctionVersion, qualifier: str | None) -> dict[str, Any]:
    """The configuration as GetFunction / GetFunctionConfiguration answer for the qualifier the
    caller named: FunctionArn carries it (``:$LATEST``, ``:alias``) while Version stays the
    version it resolved to (recorded: test_publish_version_on_create, test_alias_lifecycle)."""
    out = function_configuration(fv)
    if qualifier is None:
        return out
    return {**out, "FunctionArn": f"{fv.unqualified_arn}:{qualifier}"}


def _render(fv: FunctionVersion) -> dict[str, Any]:
    cfg = fv.config
    lc = fv.lifecycle
    out: dict[str, Any] = {
        "FunctionName": fv.name,
        "FunctionArn": fv.arn,
        "Runtime": cfg.runtime,
        "Role": cfg.role,
        "Handler": cfg.handler,
        "CodeSize": cfg.code.size,
        "Description": cfg.description,
        "Timeout": cfg.timeout,
        "MemorySize": cfg.memory_size,
        "LastModified": lambda_timestamp(fv.last_modified),
        "CodeSha256": cfg.code.sha256_b64,
        "Version": fv.version,
        "TracingConfig": {"Mode": cfg.tracing_mode},
        "RevisionId": fv.revision_id,
        "State": lc.state.value,
        "PackageType": "Zip",
        "Architectures": list(cfg.architectures),
        "EphemeralStorage": {"Size": cfg.ephemeral_storage},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "RuntimeVersionConfig": {
            "RuntimeVersionArn": f"arn:aws:lambda:{fv.region}::runtime:brazier-{cfg.runtime}"
        },
        "LoggingConfig": _logging(fv),
    }
    if cfg.environment or cfg.environment_set:
        # Absent until set: Lambda answers {"Variables": {}} only once Environment was sent.
        out["Environment"] = {"Variables": dict(cfg.environment)}
    if cfg.layers:
        sizes = cfg.layer_sizes or (0,) * len(cfg.layers)
        out["Layers"] = [{"Arn": a, "CodeSize": n} for a, n in zip(cfg.layers, sizes, strict=True)]
    if cfg.dead_letter_target:
        out["DeadLetterConfig"] = {"TargetArn": cfg.dead_letter_target}
    if cfg.kms_key_arn:
        out["KMSKeyArn"] = cfg.kms_key_arn
    if lc.state_reason is not None:
        out["StateReason"] = lc.state_reason
    if lc.state_reason_code is not None:
        out["StateReasonCode"] = lc.state_reason_code
    if lc.update is not None:
        out["LastUpdateStatus"] = lc.update.value
    if lc.update_reason is not None:
        out["LastUpdateStatusReason"] = lc.update_reason
    if lc.update_reason_code is not None:
        out["LastUpdateStatusReasonCode"] = lc.update_reason_code
    return out


def _logging(fv: FunctionVersion) -> dict[str, str]:
    lg = fv.config.logging
    out = {"LogFormat": lg.log_format, "LogGroup": fv.log_group}
    if lg.application_log_level:
        out["ApplicationLogLevel"] = lg.application_log_level
    if lg.system_log_level:
        out["SystemLogLevel"] = lg.system_log_level
    return out
