"""The environment variables of a runtime process, as Lambda sets them (reference §3.1)."""

from __future__ import annotations

from collections.abc import Mapping

from brazier.model.invocation import FunctionSpec
from brazier.model.runtimes import RuntimeFamily, lookup

RUNTIME_DIR = "/var/runtime"
TASK_ROOT = "/var/task"


def build_environment(
    spec: FunctionSpec, log_stream: str, platform: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Customer variables first, then the platform's, which win (RIE's precedence).

    ``platform``: this environment's own platform variables (its session credentials, the
    endpoints it reaches brazier at), reserved as Lambda reserves them."""
    info = lookup(spec.runtime)
    family = info.family if info else RuntimeFamily.PROVIDED
    env: dict[str, str] = {
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": (
            "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:"
            "/var/task/lib:/opt/lib"
        ),
        "LANG": "en_US.UTF-8",
        # Lambda's default; a TZ in the function's environment replaces it (Lambda honours it).
        "TZ": ":UTC",
    }
    if family is RuntimeFamily.NODE:
        major = info.version if info else "20"
        env["NODE_PATH"] = (
            f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:"
            f"{RUNTIME_DIR}/node_modules"
        )
    env.update(spec.environment)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": spec.initialization_type,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": TASK_ROOT,
            "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
            "LC_CTYPE": "C.UTF-8",
        }
    )
    env.update(platform or {})
    if info is not None and info.execution_env is not None:
        env["AWS_EXECUTION_ENV"] = info.execution_env
    if spec.log_format == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        if spec.application_log_level:
            env["AWS_LAMBDA_LOG_LEVEL"] = spec.application_log_level
    return env
