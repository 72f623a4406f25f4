"""What crosses from the invoke service to a worker and back: plain frozen values.

These travel in-process today and over HTTP in cluster mode (the ``WorkerClient`` protocol), so
they hold only data: paths, strings, numbers, bytes.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from brazier.model import ids
from brazier.model.logs import LogGroupKey

PROVISIONED = "provisioned-concurrency"


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """Everything a worker needs to run one version of a function.

    Two specs with the same ``key`` can share execution environments: the key changes whenever
    code or version configuration does.
    """

    account: str
    region: str
    name: str
    version: str  # "$LATEST" or a number
    revision_key: str  # identity of code + configuration, e.g. the version's RevisionId
    runtime: str
    handler: str
    code_dir: Path
    memory_mb: int
    timeout_s: int
    ephemeral_mb: int
    environment: Mapping[str, str] = field(default_factory=dict)
    layer_dir: Path | None = None
    log_group: str = ""
    log_format: str = "Text"
    application_log_level: str | None = None
    system_log_level: str | None = None
    tracing_mode: str = "PassThrough"
    initialization_type: str = "on-demand"
    egress: str | None = None  # the brazier:egress tag (None: the server's default policy)

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        return (
            self.account, self.region, self.name, self.version, self.revision_key,
            self.initialization_type,
        )  # fmt: skip

    @property
    def provisioned(self) -> bool:
        return self.initialization_type == PROVISIONED

    @property
    def log_group_key(self) -> LogGroupKey:
        return LogGroupKey(self.account, self.region, self.log_group)

    @property
    def unqualified_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"


def new_trace_id(sampled: bool) -> str:
    """An X-Ray trace header as Lambda hands runtimes: ``Root=1-<epoch hex>-<96 bits>;...``."""
    bits = ids.random_hex(20)
    root = f"1-{int(time.time()):08x}-{bits[:24]}"
    return f"Root={root};Parent={bits[24:]};Sampled={int(sampled)}"


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    spec: FunctionSpec
    request_id: str
    payload: bytes
    invoked_arn: str
    client_context: str | None = None  # JSON text, already base64-decoded
    cognito_identity: str | None = None
    trace_id: str | None = None
    tenant_id: str | None = None
    # With a provisioned ``spec``: where to run when every provisioned environment is busy.
    fallback: FunctionSpec | None = None


class Outcome(enum.Enum):
    SUCCESS = "success"
    FUNCTION_ERROR = "error"  # handler raised, runtime crashed, timed out: "Unhandled"


@dataclass(frozen=True, slots=True)
class InvokeResult:
    outcome: Outcome
    payload: bytes
    executed_version: str
    log_tail: bytes  # the last 4 KB of this invocation's log, START..REPORT
    error_type: str | None = None  # for REPORT / metrics: Runtime.ExitError, Sandbox.Timedout...
    content_type: str | None = "application/json"
    duration_ms: float = 0.0
    billed_ms: int = 0
    init_ms: float | None = None
    max_memory_mb: int = 0


class LogSink(Protocol):
    """Where log events go (a store-backed implementation is wired in by ``app.py``)."""

    def append(
        self,
        group: LogGroupKey,
        stream: str,
        events: list[tuple[int, str]],
        *,
        platform: bool = False,
    ) -> bool:
        """Queue events ``(timestamp_ms, message)``; never blocks, never raises. False: the sink
        is full and dropped them all (it never drops ``platform`` ones: START, END...)."""


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    environments: int  # alive: busy, idle or starting
    busy: int
    idle: int
    cold_starts: int
    warm_starts: int
    reaped: int
