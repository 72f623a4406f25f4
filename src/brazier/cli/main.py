"""Commands that talk to a running brazier over its public HTTP API only.

They sign requests with SigV4 like any AWS client, and take credentials, region and endpoint
from botocore's session, as ``aws`` does (cli/aws.py): the two share one setup.

Exit status: 0 done; 1 the function failed (its error payload printed), or the request did (an
API error such as ResourceNotFoundException, or no server at the endpoint); 2 a usage error
found before sending (bad options, an unknown profile, a payload that is not JSON).
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import click
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from brazier.cli.aws import Target, UsageProblem, resolve_target

F = TypeVar("F", bound=Callable[..., Any])

USAGE = 2  # click's own status for usage errors
FAILED = 1


def aws_options(f: F) -> F:
    """``--endpoint-url``, ``--region``, ``--profile``; unset, botocore's setup decides."""
    f = click.option(
        "--profile",
        default=None,
        help="A profile of ~/.aws/config and ~/.aws/credentials [env AWS_PROFILE].",
    )(f)
    f = click.option(
        "--region",
        default=None,
        help="Region to sign for [env AWS_REGION, AWS_DEFAULT_REGION, the profile's"
        " region; default us-east-1].",
    )(f)
    return click.option("--endpoint-url", default=None,
                        help="Where brazier listens [env AWS_ENDPOINT_URL_LAMBDA,"
                             " AWS_ENDPOINT_URL, the profile's endpoint_url, BRAZIER_ENDPOINT;"
                             " default http://127.0.0.1:9000].")(f)  # fmt: skip


def target(endpoint_url: str | None, region: str | None, profile: str | None) -> Target:
    try:
        return resolve_target(endpoint_url=endpoint_url, region=region, profile=profile)
    except UsageProblem as exc:
        click.echo(f"brazier: {exc}", err=True)
        sys.exit(USAGE)


def _signed(method: str, url: str, to: Target, body: bytes = b"", **headers: str) -> Any:
    req = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(to.credentials, "lambda", to.region).add_auth(req)
    try:
        return httpx.request(
            method, url, content=body, headers=dict(req.headers.items()), timeout=960
        )
    except httpx.HTTPError as exc:
        click.echo(
            f"brazier: cannot reach {to.endpoint} ({exc}); is the server running? Set"
            " --endpoint-url or AWS_ENDPOINT_URL_LAMBDA",
            err=True,
        )
        sys.exit(FAILED)


def _fail(reply: httpx.Response) -> NoReturn:
    kind = reply.headers.get("x-amzn-ErrorType", str(reply.status_code)).split(":")[0]
    try:
        body = reply.json()
        message = body.get("message") or body.get("Message") or reply.text
    except ValueError:
        message = reply.text
    click.echo(f"error: {kind}: {message}", err=True)
    sys.exit(FAILED)


@click.command()
@click.argument("function")
@click.argument("payload", required=False, default="{}")
@click.option("--qualifier", "-q", default=None, help="A version number or alias.")
@click.option("--log", "show_log", is_flag=True, help="Also print the invocation's log tail.")
@click.option("--event", "as_event", is_flag=True, help="Invoke asynchronously (Event).")
@aws_options
def invoke(
    function: str,
    payload: str,
    qualifier: str | None,
    show_log: bool,
    as_event: bool,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
) -> None:
    """Invoke FUNCTION with PAYLOAD (JSON text, or - to read it from stdin).

    Exits 0 on success, 1 when the function failed (its error payload printed), 2 on usage
    errors."""
    to = target(endpoint_url, region, profile)
    body = sys.stdin.buffer.read() if payload == "-" else payload.encode()
    if body:
        try:
            json.loads(body)
        except ValueError as exc:
            click.echo(f"brazier: PAYLOAD is not JSON: {exc}", err=True)
            sys.exit(USAGE)
    url = f"{to.endpoint}/2015-03-31/functions/{quote(function, safe='')}/invocations"
    if qualifier:
        url += f"?Qualifier={quote(qualifier, safe='')}"
    headers = {
        "X-Amz-Invocation-Type": "Event" if as_event else "RequestResponse",
        "X-Amz-Log-Type": "Tail" if show_log else "None",
    }
    reply = _signed("POST", url, to, body, **headers)
    if reply.status_code >= 300:
        _fail(reply)
    if show_log and reply.headers.get("X-Amz-Log-Result"):
        click.echo(base64.b64decode(reply.headers["X-Amz-Log-Result"]).decode(), err=True)
    if reply.status_code == 202:
        click.echo("accepted (202)")
        return
    click.echo(reply.text)
    if reply.headers.get("X-Amz-Function-Error"):
        sys.exit(FAILED)


@click.command()
@click.argument("function")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events.")
@click.option("--limit", default=1000, show_default=True, help="Events per request.")
@aws_options
def logs(
    function: str,
    follow: bool,
    limit: int,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
) -> None:
    """Print FUNCTION's log events (START/END/REPORT and the function's own output)."""
    to = target(endpoint_url, region, profile)
    after = 0
    base = f"{to.endpoint}/_brazier/v1/functions/{quote(function, safe='')}/logs"
    while True:
        reply = _signed("GET", f"{base}?after={after}&limit={limit}", to)
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
