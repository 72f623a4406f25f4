"""Tenants stay apart: every route tried across accounts and regions with two real keys on a
``--auth sigv4`` server (issue 11 items 2-3), and cross-account access granted by a function's
resource policy (issue 19 item 6).

Account A owns everything; account B (another key) and A signing for another region attack it.
Each case checks the answer and then that A's function is exactly as it was.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from support import HELLO_PY, ServerProcess, create_key, lambda_client, make_zip, wait_active

A, B = "111111111111", "222222222222"
REGION, OTHER_REGION = "us-east-1", "eu-west-1"
ROLE = f"arn:aws:iam::{A}:role/r"
FN = "victim"
LAYER = "shared-lib"
URL_APP = make_zip({
    "app.py": "import json\n"
    "def handler(event, context):\n"
    "    return {'statusCode': 200, 'body': json.dumps(event.get('requestContext', {}).get('accountId'))}\n"
})  # fmt: skip


@dataclass
class World:
    srv: ServerProcess
    keys: dict[str, dict[str, str]]
    a: Any
    b: Any
    a_west: Any
    url_id: str

    def client(self, who: str, region: str = REGION) -> Any:
        key = self.keys[who]
        return lambda_client(self.srv.url, key=key["AccessKeyId"],
                             secret=key["SecretAccessKey"], region=region)  # fmt: skip

    def signed(
        self, who: str, method: str, url: str, *, region: str = REGION, host: str | None = None
    ) -> httpx.Response:
        """A raw request signed with ``who``'s key, sent to ``url`` (optionally under ``host``)."""
        key = self.keys[who]
        headers = {"host": host} if host else {}
        signed_url = f"http://{host}{urllib.parse.urlsplit(url).path}" if host else url
        req = AWSRequest(method=method, url=signed_url, headers=headers)
        creds = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        SigV4Auth(creds, "lambda", region).add_auth(req)
        return httpx.request(method, url, headers=dict(req.headers.items()))

    def snapshot(self) -> dict[str, Any]:
        """What A can see of its function, to compare before and after each attack."""
        got = self.a.get_function(FunctionName=FN)
        cfg = got["Configuration"]
        return {
            "config": {k: cfg[k] for k in ("Description", "CodeSha256", "Timeout", "RevisionId")},
            "tags": got.get("Tags"),
            "concurrency": got.get("Concurrency"),
            "versions": [v["Version"] for v in self.a.list_versions_by_function(FunctionName=FN)["Versions"]],
            "aliases": [(x["Name"], x.get("Description")) for x in self.a.list_aliases(FunctionName=FN)["Aliases"]],
            "policy": self.a.get_policy(FunctionName=FN)["Policy"],
            "alias_policy": self.a.get_policy(FunctionName=FN, Qualifier="live")["Policy"],
            "urls": [(u["AuthType"], u["FunctionArn"]) for u in self.a.list_function_url_configs(FunctionName=FN)["FunctionUrlConfigs"]],
            "event_config": self.a.get_function_event_invoke_config(FunctionName=FN)["MaximumRetryAttempts"],
            "layer": self.a.get_layer_version(LayerName=LAYER, VersionNumber=1)["Version"],
            "layer_policy": self.a.get_layer_version_policy(LayerName=LAYER, VersionNumber=1)["Policy"],
        }  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("xacct") / "data"
    keys = {"A": create_key(data, A), "B": create_key(data, B)}
    srv = ServerProcess(data, args=("--auth", "sigv4"), prewarm="python3.11").start()
    w = World(srv, keys, None, None, None, "")
    w.a, w.b, w.a_west = w.client("A"), w.client("B"), w.client("A", OTHER_REGION)
    a = w.a
    a.create_function(FunctionName=FN, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                      Code={"ZipFile": URL_APP}, Description="original",
                      Tags={"team": "a"})  # fmt: skip
    wait_active(a, FN)
    a.publish_version(FunctionName=FN)
    a.create_alias(FunctionName=FN, Name="live", FunctionVersion="1")
    a.add_permission(FunctionName=FN, StatementId="keep", Action="lambda:InvokeFunction",
                     Principal="s3.amazonaws.com")  # fmt: skip
    a.add_permission(FunctionName=FN, Qualifier="live", StatementId="keep-alias",
                     Action="lambda:InvokeFunction", Principal="s3.amazonaws.com")  # fmt: skip
    a.put_function_concurrency(FunctionName=FN, ReservedConcurrentExecutions=5)
    a.put_function_event_invoke_config(FunctionName=FN, MaximumRetryAttempts=1)
    url = a.create_function_url_config(FunctionName=FN, AuthType="AWS_IAM")["FunctionUrl"]
    w.url_id = url.split("//")[1].split(".")[0]
    a.publish_layer_version(LayerName=LAYER, Content={"ZipFile": HELLO_PY})
    a.add_layer_version_permission(LayerName=LAYER, VersionNumber=1, StatementId="org",
                                   Action="lambda:GetLayerVersion", Principal=A)  # fmt: skip
    yield w
    srv.stop()


def fn_arn(qualifier: str | None = None, *, account: str = A, region: str = REGION) -> str:
    arn = f"arn:aws:lambda:{region}:{account}:function:{FN}"
    return f"{arn}:{qualifier}" if qualifier else arn


def layer_arn(version: int | None = None) -> str:
    arn = f"arn:aws:lambda:{REGION}:{A}:layer:{LAYER}"
    return f"{arn}:{version}" if version else arn


# Every function route, called with ``ref`` naming A's function (an ARN or a bare name).
Call = Callable[[Any, str], Any]
FUNCTION_ROUTES: dict[str, Call] = {
    "GetFunction": lambda c, r: c.get_function(FunctionName=r),
    "GetFunctionConfiguration": lambda c, r: c.get_function_configuration(FunctionName=r),
    "Invoke": lambda c, r: c.invoke(FunctionName=r, Payload=b"{}"),
    "InvokeAlias": lambda c, r: c.invoke(FunctionName=f"{r}:live", Payload=b"{}"),
    "UpdateFunctionConfiguration": lambda c, r: c.update_function_configuration(
        FunctionName=r, Description="pwned"),
    "UpdateFunctionCode": lambda c, r: c.update_function_code(FunctionName=r, ZipFile=HELLO_PY),
    "DeleteFunction": lambda c, r: c.delete_function(FunctionName=r),
    "DeleteFunctionVersion": lambda c, r: c.delete_function(FunctionName=r, Qualifier="1"),
    "PublishVersion": lambda c, r: c.publish_version(FunctionName=r),
    "ListVersionsByFunction": lambda c, r: c.list_versions_by_function(FunctionName=r),
    "CreateAlias": lambda c, r: c.create_alias(FunctionName=r, Name="evil", FunctionVersion="1"),
    "GetAlias": lambda c, r: c.get_alias(FunctionName=r, Name="live"),
    "UpdateAlias": lambda c, r: c.update_alias(FunctionName=r, Name="live", Description="x"),
    "DeleteAlias": lambda c, r: c.delete_alias(FunctionName=r, Name="live"),
    "ListAliases": lambda c, r: c.list_aliases(FunctionName=r),
    "CreateFunctionUrlConfig": lambda c, r: c.create_function_url_config(
        FunctionName=r, Qualifier="live", AuthType="NONE"),
    "GetFunctionUrlConfig": lambda c, r: c.get_function_url_config(FunctionName=r),
    "UpdateFunctionUrlConfig": lambda c, r: c.update_function_url_config(
        FunctionName=r, AuthType="NONE"),
    "DeleteFunctionUrlConfig": lambda c, r: c.delete_function_url_config(FunctionName=r),
    "ListFunctionUrlConfigs": lambda c, r: c.list_function_url_configs(FunctionName=r),
    "PutFunctionConcurrency": lambda c, r: c.put_function_concurrency(
        FunctionName=r, ReservedConcurrentExecutions=0),
    "GetFunctionConcurrency": lambda c, r: c.get_function_concurrency(FunctionName=r),
    "DeleteFunctionConcurrency": lambda c, r: c.delete_function_concurrency(FunctionName=r),
    "PutProvisionedConcurrencyConfig": lambda c, r: c.put_provisioned_concurrency_config(
        FunctionName=r, Qualifier="live", ProvisionedConcurrentExecutions=1),
    "GetProvisionedConcurrencyConfig": lambda c, r: c.get_provisioned_concurrency_config(
        FunctionName=r, Qualifier="live"),
    "DeleteProvisionedConcurrencyConfig": lambda c, r: c.delete_provisioned_concurrency_config(
        FunctionName=r, Qualifier="live"),
    "ListProvisionedConcurrencyConfigs": lambda c, r: c.list_provisioned_concurrency_configs(
        FunctionName=r),
    "PutFunctionEventInvokeConfig": lambda c, r: c.put_function_event_invoke_config(
        FunctionName=r, MaximumRetryAttempts=0),
    "UpdateFunctionEventInvokeConfig": lambda c, r: c.update_function_event_invoke_config(
        FunctionName=r, MaximumRetryAttempts=0),
    "GetFunctionEventInvokeConfig": lambda c, r: c.get_function_event_invoke_config(
        FunctionName=r),
    "DeleteFunctionEventInvokeConfig": lambda c, r: c.delete_function_event_invoke_config(
        FunctionName=r),
    "ListFunctionEventInvokeConfigs": lambda c, r: c.list_function_event_invoke_configs(
        FunctionName=r),
    "AddPermission": lambda c, r: c.add_permission(FunctionName=r, StatementId="evil",
        Action="lambda:InvokeFunction", Principal=B),
    "AddPermissionAlias": lambda c, r: c.add_permission(FunctionName=r, Qualifier="live",
        StatementId="evil", Action="lambda:InvokeFunction", Principal=B),
    "RemovePermission": lambda c, r: c.remove_permission(FunctionName=r, StatementId="keep"),
    "GetPolicy": lambda c, r: c.get_policy(FunctionName=r),
    "GetPolicyAlias": lambda c, r: c.get_policy(FunctionName=r, Qualifier="live"),
    "CreateFunction": lambda c, r: c.create_function(FunctionName=r, Runtime="python3.11",
        Role=ROLE, Handler="app.handler", Code={"ZipFile": HELLO_PY}),
}  # fmt: skip

# Tag routes take an ARN only.
TAG_ROUTES: dict[str, Call] = {
    "ListTags": lambda c, arn: c.list_tags(Resource=arn),
    "TagResource": lambda c, arn: c.tag_resource(Resource=arn, Tags={"team": "b"}),
    "UntagResource": lambda c, arn: c.untag_resource(Resource=arn, TagKeys=["team"]),
}

LAYER_ROUTES: dict[str, Call] = {
    "GetLayerVersion": lambda c, r: c.get_layer_version(LayerName=r, VersionNumber=1),
    "GetLayerVersionByArn": lambda c, r: c.get_layer_version_by_arn(Arn=f"{r}:1"),
    "ListLayerVersions": lambda c, r: c.list_layer_versions(LayerName=r),
    "DeleteLayerVersion": lambda c, r: c.delete_layer_version(LayerName=r, VersionNumber=1),
    "AddLayerVersionPermission": lambda c, r: c.add_layer_version_permission(
        LayerName=r, VersionNumber=1, StatementId="evil", Action="lambda:GetLayerVersion",
        Principal="*"),
    "GetLayerVersionPolicy": lambda c, r: c.get_layer_version_policy(LayerName=r, VersionNumber=1),
    "RemoveLayerVersionPermission": lambda c, r: c.remove_layer_version_permission(
        LayerName=r, VersionNumber=1, StatementId="org"),
    "CreateFunctionWithLayer": lambda c, r: c.create_function(FunctionName="uses-a-layer",
        Runtime="python3.11", Role=ROLE, Handler="app.handler", Code={"ZipFile": HELLO_PY},
        Layers=[f"{r}:1"]),
}  # fmt: skip


def refused(call: Callable[[], Any]) -> tuple[int, str, str]:
    """(status, error code, message) of a call that must fail."""
    try:
        out = call()
    except botocore.exceptions.ClientError as exc:
        err = exc.response
        return (err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"],
                err["Error"].get("Message") or "")  # fmt: skip
    pytest.fail(f"the call succeeded: {out}")


@pytest.fixture
def unchanged(world: World) -> Iterator[None]:
    before = world.snapshot()
    yield
    assert world.snapshot() == before


# Who attacks, and how A's function is named: (client attribute, reference builder, status).
ATTACKERS = {
    # Another account, by A's full ARN: 403 as Lambda answers (recorded: test_function_arns).
    "other-account-arn": ("b", lambda q=None: fn_arn(q), 403),
    # ... or by partial ARN (account:function:name).
    "other-account-partial-arn": (
        "b",
        lambda q=None: f"{A}:function:{FN}" + (f":{q}" if q else ""),
        403,
    ),
    # Another account, by bare name: its own namespace, where no such function exists.
    "other-account-name": ("b", lambda q=None: FN if q is None else f"{FN}:{q}", 404),
    # A itself, signing for another region: by name not found, by ARN "not reachable".
    "other-region-name": ("a_west", lambda q=None: FN if q is None else f"{FN}:{q}", 404),
    "other-region-arn": ("a_west", lambda q=None: fn_arn(q), 404),
}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("attacker", list(ATTACKERS))
@pytest.mark.parametrize("route", list(FUNCTION_ROUTES))
def test_function_routes_stay_in_their_account_and_region(
    world: World, route: str, attacker: str
) -> None:
    who, ref, status = ATTACKERS[attacker]
    if route == "CreateFunction" and attacker.endswith("-name"):
        pytest.skip("creating a function of one's own name in one's own account is allowed")
    got = refused(lambda: FUNCTION_ROUTES[route](getattr(world, who), ref()))
    expected_status = status
    if route == "CreateFunction" and attacker == "other-region-arn":
        expected_status = 404  # Lambda: "Functions from 'us-east-1' are not reachable ..."
    assert got[0] == expected_status, got
    if expected_status == 403:
        assert got[1] == "AccessDeniedException", got
        assert f"arn:aws:iam::{B}:root is not authorized to perform: lambda:" in got[2], got


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("attacker", ["other-account", "other-region"])
@pytest.mark.parametrize("route", list(TAG_ROUTES))
def test_tag_routes_stay_in_their_account_and_region(
    world: World, route: str, attacker: str
) -> None:
    client = world.b if attacker == "other-account" else world.a_west
    got = refused(lambda: TAG_ROUTES[route](client, fn_arn()))
    assert got[0] == (403 if attacker == "other-account" else 404), got
    own = fn_arn(account=B) if attacker == "other-account" else fn_arn(region=OTHER_REGION)
    assert refused(lambda: TAG_ROUTES[route](client, own))[0] == 404


def refused_or_empty(call: Callable[[], Any]) -> tuple[int, str]:
    """(status, error code) of a call that must fail, or (200, "") for a listing with nothing
    in it (ListLayerVersions of another account's layer lists only the versions it may read)."""
    try:
        out = call()
    except botocore.exceptions.ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]
    assert out.get("LayerVersions") == [], f"the call succeeded: {out}"
    return 200, ""


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("route", list(LAYER_ROUTES))
def test_layer_routes_stay_in_their_account(world: World, route: str) -> None:
    # A's layer grants GetLayerVersion to A only: B is refused (403 as Lambda answers for a
    # layer it may not read or change); by bare name B reaches its own namespace (404).
    # A function's Layers naming a version it may not read: "Layer version ARN does not exist."
    # (400, Lambda's text); a function and layers of different regions: 400 too.
    denied = {(403, "AccessDeniedException"), (404, "ResourceNotFoundException"), (200, "")}
    if route == "CreateFunctionWithLayer":
        denied = {(400, "InvalidParameterValueException")}
    assert refused_or_empty(lambda: LAYER_ROUTES[route](world.b, layer_arn())) in denied
    # A signing for another region: A's us-east-1 layer is not there.
    assert refused_or_empty(lambda: LAYER_ROUTES[route](world.a_west, layer_arn())) in denied
    if route not in {"CreateFunctionWithLayer", "GetLayerVersionByArn", "DeleteLayerVersion"}:
        assert refused_or_empty(lambda: LAYER_ROUTES[route](world.b, LAYER))[0] in {404, 200}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("who", ["B", "A-other-region", "unsigned"])
def test_brazier_sbom_route_stays_in_its_account(world: World, who: str) -> None:
    for name in (LAYER, urllib.parse.quote(layer_arn(), safe="")):
        url = f"{world.srv.url}/_brazier/v1/layers/{name}/versions/1/sbom"
        if who == "unsigned":
            reply = httpx.get(url)
        else:
            region = OTHER_REGION if who == "A-other-region" else REGION
            reply = world.signed(who[0], "GET", url, region=region)
        assert reply.status_code in {403, 404}, reply.text
    own = world.signed("A", "GET", f"{world.srv.url}/_brazier/v1/layers/{LAYER}/versions/1/sbom")
    assert own.status_code == 200, own.text


@pytest.mark.parametrize("who", ["B", "A-other-region"])
def test_brazier_logs_route_stays_in_its_account(world: World, who: str) -> None:
    region = OTHER_REGION if who == "A-other-region" else REGION
    world.a.invoke(FunctionName=FN, Payload=b"{}")  # A's function logs (written in batches)
    deadline = time.monotonic() + 10
    while True:
        own = world.signed("A", "GET", f"{world.srv.url}/_brazier/v1/functions/{FN}/logs")
        if own.json().get("events") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert own.status_code == 200 and own.json()["events"], own.text
    reply = world.signed(who[0], "GET", f"{world.srv.url}/_brazier/v1/functions/{FN}/logs",
                         region=region)  # fmt: skip
    # The caller's own /aws/lambda/<name> group (a deleted function's logs stay readable, as in
    # CloudWatch): empty here, never A's events.
    assert reply.status_code == 200, reply.text
    assert reply.json()["events"] == []


@pytest.mark.usefixtures("unchanged")
def test_code_location_links_are_bound_to_their_code(world: World) -> None:
    location = world.a.get_function(FunctionName=FN)["Code"]["Location"]
    assert httpx.get(location).status_code == 200
    parts = urllib.parse.urlsplit(location)
    forged = location.replace(parts.path.rsplit("/", 1)[1], "0" * 64)
    assert httpx.get(forged).status_code == 403


# -- function URLs with AuthType AWS_IAM (issue 11 item 2) -------------------------------------


def _url_call(world: World, who: str, *, region: str = REGION) -> httpx.Response:
    host = f"{world.url_id}.lambda-url.{region}.localhost:{world.srv.port}"
    return world.signed(who, "GET", f"{world.srv.url}/lambda-url/{world.url_id}/", region=region,
                        host=host)  # fmt: skip


def test_iam_url_refuses_another_accounts_signature(world: World) -> None:
    own = _url_call(world, "A")
    assert own.status_code == 200, own.text
    assert own.json() == A
    other = _url_call(world, "B")
    assert other.status_code == 403, other.text
    assert other.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert other.json() == {
        "Message": "Forbidden. For troubleshooting Function URL authorization issues, see:"
        " https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
    }  # recorded: test_lambda_permission_url_invocation


def test_iam_url_refuses_a_signature_for_another_region(world: World) -> None:
    reply = _url_call(world, "A", region=OTHER_REGION)
    assert reply.status_code == 403, reply.text


def test_iam_url_admits_an_account_the_policy_grants(world: World) -> None:
    world.a.add_permission(FunctionName=FN, StatementId="url-b", Action="lambda:InvokeFunctionUrl",
                           Principal=B, FunctionUrlAuthType="AWS_IAM")  # fmt: skip
    try:
        reply = _url_call(world, "B")
        assert reply.status_code == 200, reply.text
        assert reply.json() == B
    finally:
        world.a.remove_permission(FunctionName=FN, StatementId="url-b")
    assert _url_call(world, "B").status_code == 403


# -- cross-account access granted by a resource policy (issue 19 item 6) ----------------------


def _grant(world: World, sid: str, **kw: Any) -> Callable[[], None]:
    args = {"FunctionName": FN, "StatementId": sid, "Action": "lambda:InvokeFunction",
            "Principal": B, **kw}  # fmt: skip
    world.a.add_permission(**args)
    qualifier = kw.get("Qualifier")

    def revoke() -> None:
        extra = {"Qualifier": qualifier} if qualifier else {}
        world.a.remove_permission(FunctionName=FN, StatementId=sid, **extra)

    return revoke


def _invoke(client: Any, ref: str) -> Any:
    out = client.invoke(FunctionName=ref, Payload=b"{}")
    return json.loads(out["Payload"].read())


@pytest.mark.parametrize("principal", [B, f"arn:aws:iam::{B}:root"])
def test_policy_grants_invoke_to_another_account(world: World, principal: str) -> None:
    revoke = _grant(world, "invoke-b", Principal=principal)
    try:
        assert _invoke(world.b, fn_arn())["statusCode"] == 200
        # Only the granted action: GetFunction is still refused ...
        assert refused(lambda: world.b.get_function(FunctionName=fn_arn()))[:2] == (
            403,
            "AccessDeniedException",
        )
        # ... and only on the resource the statement names (the unqualified function).
        assert refused(lambda: _invoke(world.b, fn_arn("live")))[0] == 403
    finally:
        revoke()
    assert refused(lambda: _invoke(world.b, fn_arn()))[:2] == (403, "AccessDeniedException")


def test_policy_on_an_alias_grants_that_alias(world: World) -> None:
    revoke = _grant(world, "alias-b", Qualifier="live")
    try:
        assert _invoke(world.b, fn_arn("live"))["statusCode"] == 200
        assert refused(lambda: _invoke(world.b, fn_arn()))[0] == 403
        statement = json.loads(world.a.get_policy(FunctionName=FN, Qualifier="live")["Policy"])
        assert any(s["Resource"] == fn_arn("live") for s in statement["Statement"])
    finally:
        revoke()
    with pytest.raises(world.a.exceptions.ResourceNotFoundException) as exc:
        _grant(world, "nope", Qualifier="nope")
    assert f"Cannot find alias arn: {fn_arn('nope')}" in str(exc.value)


def test_policy_grants_read_actions(world: World) -> None:
    revoke_get = _grant(world, "get-b", Action="lambda:GetFunction")
    revoke_cfg = _grant(world, "cfg-b", Action="lambda:GetFunctionConfiguration")
    try:
        got = world.b.get_function(FunctionName=fn_arn())
        assert got["Configuration"]["FunctionArn"] == fn_arn()
        cfg = world.b.get_function_configuration(FunctionName=fn_arn())
        assert cfg["Description"] == "original"
        # Reading is not writing.
        assert refused(lambda: world.b.update_function_configuration(
            FunctionName=fn_arn(), Description="pwned"))[0] == 403  # fmt: skip
    finally:
        revoke_get()
        revoke_cfg()


def test_wildcard_principal_needs_conditions_brazier_can_check(world: World) -> None:
    # "*" limited to a source account or organisation: such keys are set when a service calls on
    # an account's behalf, never on a direct call, so B calling directly is refused.
    revoke = _grant(world, "any-from-b", Principal="*", SourceAccount=B)
    revoke_org = _grant(world, "any-org", Principal="*", PrincipalOrgID="o-abcdefghij")
    try:
        assert refused(lambda: _invoke(world.b, fn_arn()))[0] == 403
    finally:
        revoke()
        revoke_org()
    revoke = _grant(world, "anyone", Principal="*")
    try:
        assert _invoke(world.b, fn_arn())["statusCode"] == 200
    finally:
        revoke()
