"""Log groups belong to an account and a region, and the limits of log ingestion.

A log group is named by ``LoggingConfig.LogGroup`` (or ``/aws/lambda/<function>``), but it is
always the group of that name *in the function's own account and region*, as in CloudWatch Logs:
two accounts (or two regions of one account) each have their own ``/aws/lambda/f``. Every read
and write of log events goes through a ``LogGroupKey``; there is no way to name a group by its
name alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from brazier.model.errors import InvalidParameterValueException

# Lambda splits a log line into events of at most 256 KB (CloudWatch Logs' event size limit).
MAX_LINE_BYTES: Final = 256 * 1024

# Per-function ingestion quota (brazier's; Lambda throttles ingestion without publishing a rate):
# a token bucket refilled at 2 MiB/s that holds at most 8 MiB. What does not fit is dropped and
# counted, and reported by a platform line as Lambda's Telemetry API reports
# ``platform.logsDropped``.
INGEST_RATE_BYTES_PER_S: Final = 2 * 1024 * 1024
INGEST_BURST_BYTES: Final = 8 * 1024 * 1024
# What each event costs the quota besides its bytes (CloudWatch Logs counts 26 bytes per event in
# PutLogEvents' batch size): floods of empty lines are held to 77,000 events/s, not 2 million.
EVENT_OVERHEAD_BYTES: Final = 26

# Events retained by default (``--log-retention-days``), and how often old ones are swept.
DEFAULT_RETENTION_DAYS: Final = 30
RETENTION_SWEEP_INTERVAL_S: Final = 3600.0

_LOG_GROUP_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:logs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):log-group:"
    r"(?P<name>[\.\-_/#A-Za-z0-9]+)(?::\*)?"
)


@dataclass(frozen=True, slots=True)
class LogGroupKey:
    """A log group: its name within one account and region."""

    account: str
    region: str
    name: str


def own_log_group(text: str, *, account: str, region: str) -> str:
    """The group name ``LoggingConfig.LogGroup`` names, which must be the caller's own.

    A name is a group of the caller's account and region. An ARN
    (``arn:aws:logs:<region>:<account>:log-group:<name>[:*]``) is accepted only for the caller's
    own account and region and stored as the name; any other is refused.
    """
    if not text.startswith("arn:"):
        return text
    m = _LOG_GROUP_ARN.fullmatch(text)
    if m is None or m["account"] != account or m["region"] != region:
        raise InvalidParameterValueException(
            f"LoggingConfig.LogGroup must name a log group of this account ({account}) and"
            f" region ({region}): {text}"
        )
    return m["name"]
