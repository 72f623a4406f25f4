"""FunctionVersion <-> JSON documents for storage. One place, versioned with a schema number."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from brazier.model.functions import (
    Code,
    FunctionConfig,
    FunctionVersion,
    Lifecycle,
    LoggingConfig,
    State,
    UpdateStatus,
)


def dump_config(cfg: FunctionConfig) -> str:
    doc: dict[str, Any] = {
        "runtime": cfg.runtime,
        "handler": cfg.handler,
        "role": cfg.role,
        "code": {
            "sha256_hex": cfg.code.sha256_hex,
            "sha256_b64": cfg.code.sha256_b64,
            "size": cfg.code.size,
            "unzipped_size": cfg.code.unzipped_size,
        },
        "description": cfg.description,
        "timeout": cfg.timeout,
        "memory_size": cfg.memory_size,
        "environment": dict(cfg.environment),
        "environment_set": cfg.environment_set,
        "ephemeral_storage": cfg.ephemeral_storage,
        "layers": list(cfg.layers),
        "layer_sizes": list(cfg.layer_sizes),
        "logging": {
            "log_format": cfg.logging.log_format,
            "application_log_level": cfg.logging.application_log_level,
            "system_log_level": cfg.logging.system_log_level,
            "log_group": cfg.logging.log_group,
        },
        "tracing_mode": cfg.tracing_mode,
        "architectures": list(cfg.architectures),
        "dead_letter_target": cfg.dead_letter_target,
        "kms_key_arn": cfg.kms_key_arn,
    }
    return json.dumps(doc, separators=(",", ":"))


# Decoded values are immutable, and a stored document only changes with its revision, so reads
# of unchanged functions (every Get and List) reuse the decoded value.
@lru_cache(maxsize=4096)
def load_config(text: str) -> FunctionConfig:
    d = json.loads(text)
    return FunctionConfig(
        runtime=d["runtime"],
        handler=d["handler"],
        role=d["role"],
        code=Code(**d["code"]),
        description=d["description"],
        timeout=d["timeout"],
        memory_size=d["memory_size"],
        environment=d["environment"],
        # Documents from before the flag: variables were shown whenever set.
        environment_set=d.get("environment_set", bool(d["environment"])),
        ephemeral_storage=d["ephemeral_storage"],
        layers=tuple(d["layers"]),
        layer_sizes=tuple(d.get("layer_sizes", ())),
        logging=LoggingConfig(**d["logging"]),
        tracing_mode=d["tracing_mode"],
        architectures=tuple(d["architectures"]),
        dead_letter_target=d["dead_letter_target"],
        kms_key_arn=d["kms_key_arn"],
    )


def dump_lifecycle(lc: Lifecycle) -> str:
    return json.dumps(
        {
            "state": lc.state.value,
            "state_reason": lc.state_reason,
            "state_reason_code": lc.state_reason_code,
            "update": lc.update.value if lc.update else None,
            "update_reason": lc.update_reason,
            "update_reason_code": lc.update_reason_code,
        },
        separators=(",", ":"),
    )


@lru_cache(maxsize=4096)
def load_lifecycle(text: str) -> Lifecycle:
    d = json.loads(text)
    return Lifecycle(
        state=State(d["state"]),
        state_reason=d["state_reason"],
        state_reason_code=d["state_reason_code"],
        update=UpdateStatus(d["update"]) if d["update"] else None,
        update_reason=d["update_reason"],
        update_reason_code=d["update_reason_code"],
    )


def row_to_version(
    account: str,
    region: str,
    name: str,
    version: str,
    config: str,
    revision_id: str,
    last_modified: str,
    lifecycle: str,
) -> FunctionVersion:
    return FunctionVersion(
        account=account,
        region=region,
        name=name,
        version=version,
        config=load_config(config),
        revision_id=revision_id,
        last_modified=datetime.fromisoformat(last_modified),
        lifecycle=load_lifecycle(lifecycle),
    )
