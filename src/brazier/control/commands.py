"""Typed commands: what the HTTP edge hands the control-plane services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LoggingSpec:
    log_format: str | None = None
    application_log_level: str | None = None
    system_log_level: str | None = None
    log_group: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigChanges:
    """Version-specific settings; None means "not given" (keep the current value or default)."""

    runtime: str | None = None
    handler: str | None = None
    role: str | None = None
    description: str | None = None
    timeout: int | None = None
    memory_size: int | None = None
    environment: Mapping[str, str] | None = None
    ephemeral_storage: int | None = None
    layers: tuple[str, ...] | None = None
    logging: LoggingSpec | None = None
    tracing_mode: str | None = None
    architectures: tuple[str, ...] | None = None
    dead_letter_target: str | None = None
    kms_key_arn: str | None = None


@dataclass(frozen=True, slots=True)
class CreateFunction:
    name: str
    zip_file: bytes | None
    config: ConfigChanges
    package_type: str = "Zip"
    tags: Mapping[str, str] = field(default_factory=dict)
    publish: bool = False


@dataclass(frozen=True, slots=True)
class UpdateFunctionConfiguration:
    function: str
    config: ConfigChanges
    revision_id: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateFunctionCode:
    function: str
    zip_file: bytes | None
    architectures: tuple[str, ...] | None = None
    revision_id: str | None = None
    publish: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class AddPermission:
    function: str
    qualifier: str | None
    statement_id: str
    action: str
    principal: str
    source_arn: str | None = None
    source_account: str | None = None
    event_source_token: str | None = None
    principal_org_id: str | None = None
    function_url_auth_type: str | None = None
    revision_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizeFunctionAccess:
    """A caller naming a function (perhaps another account's, by ARN) for ``action``."""

    function: str
    qualifier: str | None
    action: str  # "lambda:InvokeFunction"
