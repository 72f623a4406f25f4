"""Where the CLI sends requests and as whom: botocore's session, so ``aws`` and ``brazier`` agree.

Credentials come from botocore's chain (AWS_ACCESS_KEY_ID..., AWS_PROFILE or ``--profile``,
~/.aws/credentials, ~/.aws/config, ...); placeholders when there are none, which a loopback
server in ``--auth none`` accepts. The region: ``--region``, AWS_REGION, then botocore's
(AWS_DEFAULT_REGION, the profile's), then us-east-1. The endpoint: ``--endpoint-url``, then the
one botocore configures for Lambda (AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL, the profile's
``endpoint_url`` or its ``services`` section), then BRAZIER_ENDPOINT, then the local server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import botocore.session
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import BotoCoreError

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_REGION = "us-east-1"
_PLACEHOLDER = ReadOnlyCredentials("AKIABRAZIERCLI000000", "brazier-cli", None)
# Hosts of AWS's own endpoints: what botocore answers when nothing names another endpoint.
_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


class UsageProblem(Exception):
    """The AWS setup cannot be used (an unknown profile, a broken config file)."""


@dataclass(frozen=True, slots=True)
class Target:
    endpoint: str  # no trailing slash
    region: str
    credentials: ReadOnlyCredentials


def resolve_target(
    *,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    env: Mapping[str, str] | None = None,
) -> Target:
    env = os.environ if env is None else env
    try:
        session = botocore.session.Session(profile=profile)
        region = (
            region
            or env.get("AWS_REGION")
            or session.get_config_variable("region")
            or DEFAULT_REGION
        )
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if isinstance(creds, Credentials) else None
        endpoint = endpoint_url or _configured_endpoint(session, region)
    except BotoCoreError as exc:
        raise UsageProblem(str(exc)) from None
    endpoint = endpoint or env.get("BRAZIER_ENDPOINT") or DEFAULT_ENDPOINT
    return Target(endpoint.rstrip("/"), region, frozen or _PLACEHOLDER)


def _configured_endpoint(session: botocore.session.Session, region: str) -> str | None:
    """The endpoint botocore's own configuration names for Lambda, if any (not AWS's)."""
    client = session.create_client(
        "lambda",
        region_name=region,
        aws_access_key_id=_PLACEHOLDER.access_key,
        aws_secret_access_key=_PLACEHOLDER.secret_key,
    )
    url: str = client.meta.endpoint_url
    host = urlsplit(url).hostname or ""
    return None if host.endswith(_AWS_SUFFIXES) else url
