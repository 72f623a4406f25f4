"""Commands that talk to a running brazier over its public HTTP API only.

They sign requests with SigV4 like any AWS client (credentials from the usual AWS environment
variables, or placeholders that a loopback server in ``--auth none`` accepts).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from typing import Any
from urllib.parse import quote

import click
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_endpoint = click.option(
    "--endpoint-url",
    envvar="BRAZIER_ENDPOINT",
    default="http://127.0.0.1:9000",
    show_default=True,
    help="Where brazier listens.",
)
_region = click.option("--region", envvar="AWS_REGION", default="us-east-1", show_default=True)


def _signed(method: str, url: str, region: str, body: bytes = b"", **headers: str) -> Any:
    creds = Credentials(
        os.environ.get("AWS_ACCESS_KEY_ID", "AKIABRAZIERCLI000000"),
        os.environ.get("AWS_SECRET_ACCESS_KEY", "brazier-cli"),
        os.environ.get("AWS_SESSION_TOKEN"),
    )
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(creds, "lambda", region).add_auth(req)
    return httpx.request(method, url, content=body, headers=dict(req.headers.items()), timeout=960)


def _fail(reply: httpx.Response) -> None:
    kind = reply.headers.get("x-amzn-ErrorType", str(reply.status_code))
    try:
        body = reply.json()
        message = body.get("message") or body.get("Message") or reply.text
    except ValueError:
        message = reply.text
    click.echo(f"error: {kind}: {message}", err=True)
    sys.exit(1)


@click.command()
@click.argument("function")
@click.argument("payload", required=False, default="{}")
@click.option("--qualifier", "-q", default=None, help="A version number or alias.")
@click.option("--log", "show_log", is_flag=True, help="Also print the invocation's log tail.")
@click.option("--event", "as_event", is_flag=True, help="Invoke asynchronously (Event).")
@_endpoint
@_region
def invoke(
    function: str,
    payload: str,
    qualifier: str | None,
    show_log: bool,
    as_event: bool,
    endpoint_url: str,
    region: str,
) -> None:
    """Invoke FUNCTION with PAYLOAD (JSON text, or - to read it from stdin)."""
    body = sys.stdin.buffer.read() if payload == "-" else payload.encode()
    url = f"{endpoint_url.rstrip('/')}/2015-03-31/functions/{quote(function, safe='')}/invocations"
    if qualifier:
        url += f"?Qualifier={quote(qualifier, safe='')}"
    headers = {
        "X-Amz-Invocation-Type": "Event" if as_event else "RequestResponse",
        "X-Amz-Log-Type": "Tail" if show_log else "None",
    }
    reply = _signed("POST", url, region, body, **headers)
    if reply.status_code >= 300:
        _fail(reply)
    if show_log and reply.headers.get("X-Amz-Log-Result"):
        click.echo(base64.b64decode(reply.headers["X-Amz-Log-Result"]).decode(), err=True)
    if reply.status_code == 202:
        click.echo("accepted (202)")
        return
    click.echo(reply.text)
    if reply.headers.get("X-Amz-Function-Error"):
        sys.exit(2)


@click.command()
@click.argument("function")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events.")
@click.option("--limit", default=1000, show_default=True)
@_endpoint
@_region
def logs(function: str, follow: bool, limit: int, endpoint_url: str, region: str) -> None:
    """Print FUNCTION's log events (START/END/REPORT and the function's own output)."""
    after = 0
    base = f"{endpoint_url.rstrip('/')}/_brazier/v1/functions/{quote(function, safe='')}/logs"
    while True:
        reply = _signed("GET", f"{base}?after={after}&limit={limit}", region)
        if reply.status_code >= 300:
            _fail(reply)
        events = json.loads(reply.content)["events"]
        for event in events:
            click.echo(event["message"], nl=False)
            after = event["seq"]
        if not follow:
            return
        if not events:
            time.sleep(0.5)


def client_commands() -> list[click.Command]:
    """The HTTP-client commands added to ``brazier``."""
    from brazier.cli.layers import layers  # imports this module: import it late

    return [invoke, logs, layers]
