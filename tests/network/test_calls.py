"""Functions calling brazier (issue 13 item 3, decision 0029): every environment gets session
credentials and AWS_ENDPOINT_URL_LAMBDA, so ``boto3.client("lambda").invoke(...)`` in a handler
reaches another function with no endpoint in its code; the credentials die with the environment
and a forged token is refused, in both auth modes. Real server, real sandboxes, real egress."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.config
import pytest
from botocore.exceptions import ClientError

from .conftest import needs_root
from support import call, create_key, lambda_client, make_zip, running_server, wait_active

pytestmark = [pytest.mark.sandbox, needs_root]
ROLE = "arn:aws:iam::000000000000:role/r"
ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_LAMBDA")  # fmt: skip
CALLER = f"""
import json, os, urllib.error, urllib.request
import boto3

def handler(event, context):
    out = {{"env": {{k: os.environ.get(k) for k in {ENV_KEYS!r}}}}}
    if event.get("call"):
        reply = boto3.client("lambda").invoke(
            FunctionName=event["call"], Payload=json.dumps({{"x": event["x"]}})
        )
        out["result"] = json.loads(reply["Payload"].read())
    if event.get("probe"):  # what a function gets without its session credentials
        url = os.environ["AWS_ENDPOINT_URL_LAMBDA"] + "/2015-03-31/functions/"
        try:
            out["unsigned"] = urllib.request.urlopen(url, timeout=5).status
        except urllib.error.HTTPError as e:
            out["unsigned"] = e.code
        made_up = boto3.client("lambda", aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                               aws_secret_access_key="x" * 40, aws_session_token=None)
        try:
            out["made_up"] = len(made_up.list_functions()["Functions"])
        except Exception as e:
            out["made_up"] = e.response["Error"]["Code"]
    return out
"""
CALLEE = "def handler(event, context):\n    return {'doubled': event['x'] * 2}\n"
# What the SDK needs of botocore's data: the Lambda model and the endpoint/retry tables.
_BOTOCORE_DATA = ("lambda", "endpoints.json", "partitions.json", "_retry.json",
                  "sdk-default-configuration.json")  # fmt: skip
_PACKAGES = ("boto3", "botocore", "jmespath", "dateutil", "urllib3", "s3transfer", "six.py")


def _sdk_layer() -> bytes:
    """boto3 and what it imports, from this test's own venv, as a layer (python/...)."""
    site = Path(botocore.__file__).parent.parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name in _PACKAGES:
            root = site / name
            files = [root] if root.is_file() else sorted(root.rglob("*"))
            for f in files:
                rel = f.relative_to(site)
                if not f.is_file() or "__pycache__" in rel.parts:
                    continue
                parts = rel.parts
                data = parts[:2] in {("botocore", "data"), ("boto3", "data")} and len(parts) > 2
                if data and (parts[0] == "boto3" or parts[2] not in _BOTOCORE_DATA):
                    continue
                zf.write(f, f"python/{rel.as_posix()}")
    return buf.getvalue()


def _deploy(client: Any) -> None:
    layer = client.publish_layer_version(
        LayerName="sdk", Content={"ZipFile": _sdk_layer()}, CompatibleRuntimes=["python3.11"]
    )["LayerVersionArn"]
    client.create_function(
        FunctionName="caller", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": CALLER})}, Layers=[layer], Timeout=30,
    )  # fmt: skip
    client.create_function(
        FunctionName="callee", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": CALLEE})},
    )  # fmt: skip
    wait_active(client, "caller")
    wait_active(client, "callee")


def _as_function(url: str, env: dict[str, str], **override: str) -> Any:
    """A client signing as the function did, with its captured credentials."""
    return boto3.client(
        "lambda", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=override.get("key", env["AWS_ACCESS_KEY_ID"]),
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=override.get("token", env["AWS_SESSION_TOKEN"]),
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def _refused(client: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as exc:
        client.get_function(FunctionName="callee")
    return dict(exc.value.response)


def _assert_invalid_token(response: dict[str, Any]) -> None:
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "UnrecognizedClientException"
    assert response["Error"]["Message"] == "The security token included in the request is invalid."


def _calls_and_revokes(url: str, client: Any, port: int) -> dict[str, str]:
    _deploy(client)
    _, out = call(client, "caller", {"call": "callee", "x": 21})
    assert out["result"] == {"doubled": 42}, out
    env = out["env"]
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == f"http://host.brazier.internal:{port}"
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA") and len(env["AWS_ACCESS_KEY_ID"]) == 20
    assert env["AWS_SESSION_TOKEN"]

    # Live: the function's credentials work from anywhere that reaches brazier.
    as_function = _as_function(url, env)
    assert as_function.get_function(FunctionName="callee")["Configuration"]["FunctionName"]
    # A forged token for the live key, and a live key without its token: refused.
    _assert_invalid_token(_refused(_as_function(url, env, token=env["AWS_SESSION_TOKEN"] + "x")))
    no_token = boto3.client(
        "lambda", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    _assert_invalid_token(_refused(no_token))

    # The environment ends (the idle reaper, --idle-ttl 1): its credentials end with it.
    deadline = time.monotonic() + 30
    while True:
        try:
            as_function.get_function(FunctionName="callee")
        except ClientError as exc:
            _assert_invalid_token(dict(exc.response))
            break
        assert time.monotonic() < deadline, "the credentials outlived their environment"
        time.sleep(0.5)
    # A new environment gets new credentials.
    _, again = call(client, "caller", {})
    assert again["env"]["AWS_ACCESS_KEY_ID"] != env["AWS_ACCESS_KEY_ID"]
    return dict(env)


def test_function_invokes_another_with_session_credentials_auth_none(tmp_path: Path) -> None:
    args = ("--egress", "internet", "--idle-ttl", "1")
    with running_server(tmp_path / "data", args=args) as srv:
        client = lambda_client(srv.url)
        _calls_and_revokes(srv.url, client, srv.port)
        # --auth none serves the host's own unsigned callers, never a function's: from an
        # environment's address, only its session (or a real key) is accepted.
        _, out = call(client, "caller", {"probe": True})
        assert out["unsigned"] == 403, out
        assert out["made_up"] == "UnrecognizedClientException", out
        assert len(client.list_functions()["Functions"]) == 2  # the host: still unsigned-open


def test_function_invokes_another_with_session_credentials_sigv4(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, account="111122223333")
    args = ("--egress", "internet", "--idle-ttl", "1", "--auth", "sigv4")
    with running_server(data, args=args) as srv:
        client = lambda_client(srv.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
        env = _calls_and_revokes(srv.url, client, srv.port)
        assert env["AWS_ACCESS_KEY_ID"] != key["AccessKeyId"]  # never the operator's key
        assert env["AWS_SECRET_ACCESS_KEY"] != key["SecretAccessKey"]
        # A session token nobody minted, on an unknown ASIA key: refused.
        forged = {**env, "AWS_ACCESS_KEY_ID": "ASIA" + "Q" * 16}
        _assert_invalid_token(_refused(_as_function(srv.url, forged)))


def test_session_credentials_act_as_the_functions_account(tmp_path: Path) -> None:
    """Credentials of an account-111122223333 function see that account's functions only."""
    data = tmp_path / "data"
    mine = create_key(data, account="111122223333")
    other = create_key(data, account="444455556666")
    args = ("--egress", "internet", "--auth", "sigv4")
    with running_server(data, args=args) as srv:
        client = lambda_client(srv.url, key=mine["AccessKeyId"], secret=mine["SecretAccessKey"])
        theirs = lambda_client(srv.url, key=other["AccessKeyId"], secret=other["SecretAccessKey"])
        theirs.create_function(
            FunctionName="secret", Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": CALLEE})},
        )  # fmt: skip
        _deploy(client)
        _, out = call(client, "caller", {})
        as_function = _as_function(srv.url, out["env"])
        names = [f["FunctionName"] for f in as_function.list_functions()["Functions"]]
        assert sorted(names) == ["callee", "caller"]
        _, reply = call(client, "caller", {"call": "secret", "x": 1})
        assert "ResourceNotFoundException" in json.dumps(reply), reply
