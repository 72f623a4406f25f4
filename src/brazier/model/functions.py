"""Functions and their versions: the configuration Lambda stores and the lifecycle it reports."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from brazier.model.arns import LATEST, function_arn
from brazier.model.errors import InvalidStateTransition

# Keys of per-function settings in the store.
RESERVED_CONCURRENCY = "reserved-concurrency"
EVENT_INVOKE_CONFIG = "event-invoke-config"
FUNCTION_URL = "function-url"
PROVISIONED_CONCURRENCY = "provisioned-concurrency"


class State(enum.Enum):
    PENDING = "Pending"
    ACTIVE = "Active"
    INACTIVE = "Inactive"
    FAILED = "Failed"


class UpdateStatus(enum.Enum):
    IN_PROGRESS = "InProgress"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


# Allowed transitions; anything else is refused (a bug, never a client error).
_STATE_MOVES: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.ACTIVE, State.FAILED}),
    # An update to a runtime this host lacks fails the function (InvalidRuntime); an update
    # that makes it runnable again (the runtime installed) brings it back to Active.
    State.ACTIVE: frozenset({State.INACTIVE, State.FAILED}),
    State.INACTIVE: frozenset({State.PENDING}),
    State.FAILED: frozenset({State.ACTIVE, State.FAILED}),
}
_UPDATE_MOVES: dict[UpdateStatus | None, frozenset[UpdateStatus]] = {
    # A create finishes as Successful or Failed without passing through InProgress.
    None: frozenset(UpdateStatus),
    UpdateStatus.IN_PROGRESS: frozenset({UpdateStatus.SUCCESSFUL, UpdateStatus.FAILED}),
    UpdateStatus.SUCCESSFUL: frozenset({UpdateStatus.IN_PROGRESS}),
    UpdateStatus.FAILED: frozenset({UpdateStatus.IN_PROGRESS}),
}


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Function ``State`` and ``LastUpdateStatus`` with their reasons."""

    state: State = State.PENDING
    state_reason: str | None = "The function is being created."
    state_reason_code: str | None = "Creating"
    update: UpdateStatus | None = None
    update_reason: str | None = None
    update_reason_code: str | None = None

    def to_state(self, new: State, reason: str | None = None, code: str | None = None) -> Lifecycle:
        if new not in _STATE_MOVES[self.state]:
            raise InvalidStateTransition(f"State {self.state.value} -> {new.value}")
        return replace(self, state=new, state_reason=reason, state_reason_code=code)

    def to_update(
        self, new: UpdateStatus, reason: str | None = None, code: str | None = None
    ) -> Lifecycle:
        if new not in _UPDATE_MOVES[self.update]:
            current = self.update.value if self.update else "None"
            raise InvalidStateTransition(f"LastUpdateStatus {current} -> {new.value}")
        return replace(self, update=new, update_reason=reason, update_reason_code=code)

    @property
    def busy(self) -> bool:
        """True while a create or update is being applied (further updates are refused)."""
        return self.state is State.PENDING or self.update is UpdateStatus.IN_PROGRESS


@dataclass(frozen=True, slots=True)
class Code:
    sha256_hex: str
    sha256_b64: str
    size: int
    unzipped_size: int


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    log_format: str = "Text"
    application_log_level: str | None = None
    system_log_level: str | None = None
    log_group: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """Everything PublishVersion snapshots: code and version-specific configuration."""

    runtime: str
    handler: str
    role: str
    code: Code
    description: str = ""
    timeout: int = 3
    memory_size: int = 128
    environment: Mapping[str, str] = field(default_factory=dict)
    environment_set: bool = False  # Environment was ever sent (Lambda shows it from then on)
    ephemeral_storage: int = 512
    layers: tuple[str, ...] = ()  # concrete LayerVersionArns, in order
    layer_sizes: tuple[int, ...] = ()  # their CodeSize, for the configuration's Layers list
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    tracing_mode: str = "PassThrough"
    architectures: tuple[str, ...] = ("x86_64",)
    dead_letter_target: str | None = None
    kms_key_arn: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """One version (``$LATEST`` or a number) of a function in one account and region."""

    account: str
    region: str
    name: str
    version: str
    config: FunctionConfig
    revision_id: str
    last_modified: datetime
    lifecycle: Lifecycle

    @property
    def arn(self) -> str:
        """``FunctionArn`` as Lambda reports it: unqualified for $LATEST, else ``:N``."""
        q = None if self.version == LATEST else self.version
        return function_arn(self.region, self.account, self.name, q)

    @property
    def unqualified_arn(self) -> str:
        return function_arn(self.region, self.account, self.name)

    @property
    def log_group(self) -> str:
        return self.config.logging.log_group or f"/aws/lambda/{self.name}"


def lambda_timestamp(when: datetime) -> str:
    """``LastModified`` in AWS's format: ``2024-01-31T12:34:56.789+0000``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"
