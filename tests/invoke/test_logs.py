"""Function logs belong to (account, region, group): two real keys on a ``--auth sigv4`` server,
real sandboxes, the real logs route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import botocore.auth
import botocore.credentials
import botocore.exceptions
import httpx
import pytest
from botocore.awsrequest import AWSRequest

from support import ServerProcess, create_key, lambda_client, make_zip, wait_active

A, B = "111111111111", "222222222222"
REGION, OTHER_REGION = "us-east-1", "eu-west-1"


class Tenant:
    """One account's key, in one region: a Lambda client and the signed logs route."""

    def __init__(self, srv: ServerProcess, key: dict[str, str], account: str, region: str):
        self.srv, self.key, self.account, self.region = srv, key, account, region
        self.client = lambda_client(
            srv.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"], region=region
        )

    def in_region(self, region: str) -> Tenant:
        return Tenant(self.srv, self.key, self.account, region)

    def deploy(self, name: str, source: str, **kw: Any) -> None:
        self.client.create_function(
            FunctionName=name, Runtime="python3.11", Handler="app.handler",
            Role=f"arn:aws:iam::{self.account}:role/r",
            Code={"ZipFile": make_zip({"app.py": source})}, **kw,
        )  # fmt: skip
        wait_active(self.client, name)

    def logs_reply(self, function: str) -> httpx.Response:
        url = f"{self.srv.url}/_brazier/v1/functions/{quote(function, safe='')}/logs?limit=10000"
        req = AWSRequest(method="GET", url=url)
        creds = botocore.credentials.Credentials(
            self.key["AccessKeyId"], self.key["SecretAccessKey"]
        )
        botocore.auth.SigV4Auth(creds, "lambda", self.region).add_auth(req)
        return httpx.get(url, headers=dict(req.headers.items()))

    def log_text(self, function: str) -> str:
        reply = self.logs_reply(function)
        assert reply.status_code == 200, reply.text
        return "".join(e["message"] for e in reply.json()["events"])


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tenant, Tenant]]:
    data = tmp_path_factory.mktemp("logs-tenants") / "data"
    key_a, key_b = create_key(data, A), create_key(data, B)
    srv = ServerProcess(data, args=("--auth", "sigv4")).start()
    yield Tenant(srv, key_a, A, REGION), Tenant(srv, key_b, B, REGION)
    srv.stop()


def _printer(text: str) -> str:
    return f"def handler(e, c):\n    print({text!r})\n    return 1\n"


def test_another_account_reads_only_its_own_group(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    a.deploy("victim", _printer("A-SECRET-1"))
    a.client.invoke(FunctionName="victim")
    assert "A-SECRET-1" in a.log_text("victim")
    # B has no function of that name: B reads B's own (empty) /aws/lambda/victim.
    assert b.log_text("victim") == ""
    # Nor by A's ARN: another account's function is not found.
    reply = b.logs_reply(f"arn:aws:lambda:{REGION}:{A}:function:victim")
    assert reply.status_code == 404, reply.text
    assert reply.headers["x-amzn-ErrorType"].startswith("ResourceNotFoundException")


def test_another_region_of_the_same_account_reads_only_its_own_group(
    tenants: tuple[Tenant, Tenant],
) -> None:
    a, _ = tenants
    a.deploy("regional", _printer("A-REGION-ONE"))
    a.client.invoke(FunctionName="regional")
    there = a.in_region(OTHER_REGION)
    assert there.log_text("regional") == ""
    there.deploy("regional", _printer("A-REGION-TWO"))
    there.client.invoke(FunctionName="regional")
    assert "A-REGION-ONE" not in there.log_text("regional")
    assert "A-REGION-TWO" in there.log_text("regional")
    assert "A-REGION-TWO" not in a.log_text("regional")


def test_a_log_group_of_the_same_name_is_the_callers_own(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    a.deploy("target", _printer("A-OWN-LINE"))
    a.client.invoke(FunctionName="target")
    b.deploy("intruder", _printer("B-INJECTED"), LoggingConfig={"LogGroup": "/aws/lambda/target"})
    b.client.invoke(FunctionName="intruder")
    assert "B-INJECTED" in b.log_text("intruder")  # in B's own /aws/lambda/target
    assert "B-INJECTED" not in a.log_text("target")
    assert "A-OWN-LINE" not in b.log_text("intruder")


def test_log_group_arns_must_be_the_callers_own(tenants: tuple[Tenant, Tenant]) -> None:
    _, b = tenants
    others = [
        f"arn:aws:logs:{REGION}:{A}:log-group:/aws/lambda/target",  # another account
        f"arn:aws:logs:{OTHER_REGION}:{B}:log-group:/aws/lambda/target",  # another region
    ]
    for arn in others:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            b.deploy("arn-group", _printer("x"), LoggingConfig={"LogGroup": arn})
        assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    own = f"arn:aws:logs:{REGION}:{B}:log-group:/custom/b-group:*"
    b.deploy("arn-group", _printer("B-VIA-ARN"), LoggingConfig={"LogGroup": own})
    cfg = b.client.get_function_configuration(FunctionName="arn-group")
    assert cfg["LoggingConfig"]["LogGroup"] == "/custom/b-group"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        b.client.update_function_configuration(
            FunctionName="arn-group", LoggingConfig={"LogGroup": others[0]}
        )
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    b.client.invoke(FunctionName="arn-group")
    assert "B-VIA-ARN" in b.log_text("arn-group")
