"""Server settings: one frozen value, validated at construction, passed down from ``app.py``."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from brazier.model.egress import parse_egress
from brazier.model.logs import DEFAULT_RETENTION_DAYS

AuthMode = Literal["sigv4", "none"]

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_ACCOUNT = re.compile(r"^\d{12}$")


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (so open, emulator-style auth is safe)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9000
    auth: AuthMode | None = None  # None: sigv4 off loopback, none on loopback
    region: str = "us-east-1"
    account_id: str = "000000000000"
    log_level: str = "info"
    # Data plane
    account_concurrency: int = 1000
    idle_ttl_seconds: float = 600.0
    init_timeout_seconds: float = 10.0
    # Days function log events are kept; 0 keeps them forever.
    log_retention_days: int = DEFAULT_RETENTION_DAYS
    # Runtimes whose zygotes start with the server (None: every supported runtime installed).
    prewarm_runtimes: tuple[str, ...] | None = None
    # Public URL the server is reached at, for Code.Location; derived from host/port if unset.
    public_url: str | None = None
    # PEM certificate chain and private key: serve HTTPS instead of HTTP (both or neither).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Async invocations: seconds before the 2nd and 3rd attempts of a failed event (Lambda's).
    async_retry_delays: tuple[float, ...] = (60.0, 120.0)
    # SQS-compatible server that SQS destinations are sent to (None: they wait, kept).
    sqs_endpoint: str | None = None
    # Egress networking (decision 0025): the server's default policy ("internet", "none" or a
    # CIDR[:port] list; None: environments have loopback only, as before), and the host's own
    # TCP ports environments may reach at host.brazier.internal.
    egress: str | None = None
    allow_host_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, not {self.port}")
        if not _REGION.match(self.region):
            raise ValueError(f"not an AWS region name: {self.region!r}")
        if not _ACCOUNT.match(self.account_id):
            raise ValueError(f"account id must be 12 digits: {self.account_id!r}")
        if self.auth not in (None, "sigv4", "none"):
            raise ValueError(f"auth must be sigv4 or none, not {self.auth!r}")
        if self.account_concurrency < 1:
            raise ValueError("account concurrency must be at least 1")
        if self.idle_ttl_seconds <= 0:
            raise ValueError("idle TTL must be positive")
        if self.log_retention_days < 0:
            raise ValueError("log retention must be 0 (forever) or a number of days")
        if not self.async_retry_delays or any(d < 0 for d in self.async_retry_delays):
            raise ValueError("async retry delays must be one or more non-negative seconds")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.egress is not None:
            parse_egress(self.egress)  # ValueError names the grammar
        for port in self.allow_host_ports:
            if not 0 < port < 65536:
                raise ValueError(f"--allow-host-port must be 1-65535, not {port}")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def plaintext_off_loopback(self) -> bool:
        """Signed requests travel in clear to other machines: they can be captured and replayed
        within their 5 minutes, with unsigned headers added (Lambda honours those too)."""
        return not self.tls and not is_loopback(self.host)

    @property
    def effective_auth(self) -> AuthMode:
        if self.auth is not None:
            return self.auth
        return "none" if is_loopback(self.host) else "sigv4"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"
