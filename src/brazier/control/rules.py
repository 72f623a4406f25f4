"""Lambda's configuration rules beyond what the service model's shapes express."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping

from brazier.model import runtimes
from brazier.model.errors import InvalidParameterValueException, ValidationException

MEMORY_RANGE = (128, 10240)
TIMEOUT_RANGE = (1, 900)
EPHEMERAL_RANGE = (512, 10240)
ENV_LIMIT = 4096
NAME_MAX = 64  # a function's name (an ARN naming it may be longer)
MAX_TAGS = 50  # tags on one resource

# Set by the platform; a function's configuration may not override them (§3.1).
RESERVED_ENV = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)  # fmt: skip


def _range(field: str, value: int | None, bounds: tuple[int, int]) -> None:
    if value is None:
        return
    lo, hi = bounds
    if value < lo:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
            f"constraint: Member must have value greater than or equal to {lo}"
        )
    if value > hi:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
            f"constraint: Member must have value less than or equal to {hi}"
        )


def check_limits(memory: int | None, timeout: int | None, ephemeral: int | None) -> None:
    _range("memorySize", memory, MEMORY_RANGE)
    _range("timeout", timeout, TIMEOUT_RANGE)
    _range("ephemeralStorage.size", ephemeral, EPHEMERAL_RANGE)


def check_runtime(runtime: str) -> None:
    if runtime in runtimes.DEPRECATED:
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is no longer supported for creating or updating"
            " AWS Lambda functions. We recommend you use a supported runtime while creating or"
            " updating functions."
        )
    if runtime not in runtimes.LAMBDA_RUNTIME_ENUM:
        # Lambda's answer to an identifier outside its enum (case matters: PYTHON3.9 is refused).
        raise InvalidParameterValueException(
            f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum"
            f" value set: [{', '.join(runtimes.LAMBDA_RUNTIME_ENUM)}] or be a valid ARN"
        )
    if runtimes.lookup(runtime) is None:
        # A runtime Lambda has (java, ruby, dotnet) that brazier cannot run: brazier's own answer.
        supported = ", ".join(sorted(runtimes.SUPPORTED))
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is not supported by this Lambda endpoint"
            f" (brazier). Supported runtimes: {supported}."
        )


HOST_ARCHITECTURE = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
}.get(platform.machine().lower(), platform.machine().lower())


def check_architectures(architectures: tuple[str, ...]) -> None:
    """Functions run natively: an architecture this host lacks is refused, not ignored."""
    foreign = [a for a in architectures if a != HOST_ARCHITECTURE]
    if foreign:
        raise InvalidParameterValueException(
            f"This brazier host runs {HOST_ARCHITECTURE} functions; Architectures"
            f" [{', '.join(foreign)}] cannot run here."
        )


def check_function_name(name: str) -> None:
    """The name part of a new function's FunctionName (the model allows 140 for an ARN)."""
    if len(name) > NAME_MAX:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy"
            f" constraint: Member must have length less than or equal to {NAME_MAX}"
        )


def check_tag_count(tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")


def check_environment(env: Mapping[str, str]) -> None:
    reserved = sorted(k for k in env if k in RESERVED_ENV)
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment"
            " variables you have provided contains reserved keys that are currently not"
            f" supported for modification. Reserved keys used in this request: {','.join(reserved)}"
        )
    measured = json.dumps(dict(env), separators=(",", ":"))
    if len(measured.encode()) > ENV_LIMIT:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment"
            " variables you have provided exceeded the 4KB limit. String measured: " + measured
        )
