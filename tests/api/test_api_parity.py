"""Responses shaped as AWS records them (issue 15 item 1), resource policies on aliases (item 2)
and the small operations (item 6): GetFunctionCodeSigningConfig, InvokeAsync, and the sequence
Terraform's aws_lambda_function runs after a create.

The expected member sets come from the recording (LocalStack's test_lambda_api.snapshot.json,
recorded against AWS), read here so the test follows the recording, not brazier's own output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import HELLO_PY, ServerProcess, create_key, lambda_client, make_zip, wait_active

SNAPSHOT = Path("/work/shared/reference/aws-recorded/test_lambda_api.snapshot.json")
ROLE = "arn:aws:iam::000000000000:role/lambda-role"


def _recorded(test: str, key: str) -> Any:
    """One recorded value; the members brazier must show are taken from it."""
    if not SNAPSHOT.exists():
        pytest.skip("the AWS recording is not on this machine")
    data = json.loads(SNAPSHOT.read_text())
    for name, value in data.items():
        if name.endswith("::" + test):
            return value["recorded-content"][key]
    raise KeyError(test)


# Members AWS shows that brazier does not have (image config, VPC, file systems, signing).
_NOT_MODELLED = frozenset({"ResponseMetadata", "CreateEventSourceMappingResponse"})


def _create(client: Any, name: str, **kw: Any) -> dict[str, Any]:
    out = client.create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": HELLO_PY}, **kw,
    )  # fmt: skip
    wait_active(client, name)
    return dict(out)


def test_environment_is_absent_until_set(client: Any, fname: str) -> None:
    recorded = _recorded(
        "TestLambdaFunction::test_lambda_code_location_zipfile", "get-function-response"
    )
    assert "Environment" not in recorded["Configuration"]
    created = _create(client, fname)
    assert "Environment" not in created
    assert "Environment" not in client.get_function(FunctionName=fname)["Configuration"]
    # Sent empty, it is shown empty from then on (recorded: test_list_functions's creates).
    assert _recorded("TestLambdaFunction::test_list_functions", "list_all")["Functions"][0][
        "Environment"
    ] == {"Variables": {}}
    client.update_function_configuration(FunctionName=fname, Environment={"Variables": {}})
    wait_active(client, fname)
    assert client.get_function_configuration(FunctionName=fname)["Environment"] == {"Variables": {}}


def test_get_function_members_match_the_recording(client: Any, fname: str) -> None:
    recorded = _recorded(
        "TestLambdaFunction::test_lambda_code_location_zipfile", "get-function-response"
    )
    _create(client, fname)
    got = client.get_function(FunctionName=fname)
    assert set(got["Configuration"]) == set(recorded["Configuration"])
    assert set(got) - {"ResponseMetadata"} == set(recorded) - _NOT_MODELLED


def test_list_items_leave_out_state_and_runtime_version(client: Any, fname: str) -> None:
    recorded = _recorded("TestLambdaFunction::test_list_functions", "list_all")["Functions"]
    want = set(recorded[0]) - {"Environment"}
    _create(client, fname, Publish=True)
    for version in ("ALL", None):
        kw = {"FunctionVersion": version} if version else {}
        items = [
            f
            for page in client.get_paginator("list_functions").paginate(**kw)
            for f in page["Functions"]
            if f["FunctionName"] == fname
        ]
        assert items and all(set(f) == want for f in items), items
    arns = {f["Version"]: f["FunctionArn"] for f in items}
    listed = client.list_versions_by_function(FunctionName=fname)["Versions"]
    assert [set(v) for v in listed] == [want, want]
    assert listed[0]["FunctionArn"].endswith(f":{fname}:$LATEST")
    all_items = [
        f
        for page in client.get_paginator("list_functions").paginate(FunctionVersion="ALL")
        for f in page["Functions"]
        if f["FunctionName"] == fname
    ]
    assert {f["Version"]: f["FunctionArn"].rsplit(":", 1)[1] for f in all_items} == {
        "$LATEST": "$LATEST",
        "1": "1",
    }
    assert not arns["$LATEST"].endswith("$LATEST")  # the default listing: unqualified


def test_get_function_names_the_qualifier_it_was_asked_for(client: Any, fname: str) -> None:
    latest = _recorded(
        "TestLambdaVersions::test_publish_version_on_create", "get_function_latest_result"
    )
    assert latest["Configuration"]["FunctionArn"].endswith(":$LATEST")
    by_alias = _recorded("TestLambdaAlias::test_alias_lifecycle", "get_function_alias_1_1")
    assert by_alias["Configuration"]["FunctionArn"].endswith(":aliasname1_1")
    assert by_alias["Configuration"]["Version"] == "1"
    _create(client, fname, Publish=True)
    client.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    got = client.get_function(FunctionName=fname, Qualifier="$LATEST")["Configuration"]
    assert got["FunctionArn"].endswith(f":{fname}:$LATEST") and got["Version"] == "$LATEST"
    got = client.get_function(FunctionName=fname, Qualifier="live")["Configuration"]
    assert got["FunctionArn"].endswith(f":{fname}:live") and got["Version"] == "1"
    arn = got["FunctionArn"]
    assert client.get_function_configuration(FunctionName=arn)["FunctionArn"] == arn
    got = client.get_function(FunctionName=fname)["Configuration"]
    assert got["FunctionArn"].endswith(f":function:{fname}")


def test_timezone_from_the_environment_is_honoured(client: Any, fname: str) -> None:
    """Lambda sets TZ=:UTC unless the function sets its own, which the runtime then uses."""
    code = make_zip({
        "app.py": "import os, time\n"
        "def handler(event, context):\n"
        "    return {'tz': os.environ.get('TZ'), 'zone': time.strftime('%Z'),\n"
        "            'offset': -time.timezone}\n"
    })  # fmt: skip
    client.create_function(
        FunctionName=fname, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": code}, Environment={"Variables": {"TZ": "Asia/Tokyo"}},
    )  # fmt: skip
    wait_active(client, fname)
    out = json.loads(client.invoke(FunctionName=fname)["Payload"].read())
    assert out == {"tz": "Asia/Tokyo", "zone": "JST", "offset": 9 * 3600}
    client.update_function_configuration(FunctionName=fname, Environment={"Variables": {}})
    wait_active(client, fname)
    out = json.loads(client.invoke(FunctionName=fname)["Payload"].read())
    assert out == {"tz": ":UTC", "zone": "UTC", "offset": 0}


# -- small operations --------------------------------------------------------------------------


def test_get_function_code_signing_config_without_a_config(client: Any, fname: str) -> None:
    """Not recorded for a function without a config; AWS documents both members as required
    and answers the function's name with an empty CodeSigningConfigArn."""
    _create(client, fname)
    got = client.get_function_code_signing_config(FunctionName=fname)
    assert (got["FunctionName"], got["CodeSigningConfigArn"]) == (fname, "")
    arn = client.get_function_configuration(FunctionName=fname)["FunctionArn"]
    assert client.get_function_code_signing_config(FunctionName=arn)["FunctionName"] == fname
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_code_signing_config(FunctionName=fname + "-gone")


def test_invoke_async_queues_the_event(client: Any, fname: str) -> None:
    code = make_zip({
        "app.py": "import json\n"
        "def handler(event, context):\n"
        "    print('ASYNC-EVENT ' + json.dumps(event, sort_keys=True))\n"
        "    return None\n"
    })  # fmt: skip
    client.create_function(
        FunctionName=fname, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": code},
    )  # fmt: skip
    wait_active(client, fname)
    reply = client.invoke_async(FunctionName=fname, InvokeArgs=json.dumps({"n": 7}).encode())
    assert reply["Status"] == 202
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 202
    logs = f"{client.meta.endpoint_url}/_brazier/v1/functions/{fname}/logs"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        events = httpx.get(logs, timeout=10).json().get("events", [])
        if any('ASYNC-EVENT {"n": 7}' in e["message"] for e in events):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the InvokeAsync event never ran")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke_async(FunctionName=fname + "-gone", InvokeArgs=b"{}")


def test_terraform_sequence(client: Any, fname: str) -> None:
    """What Terraform's aws_lambda_function reads after every create."""
    _create(client, fname)
    fn = client.get_function(FunctionName=fname)
    assert fn["Configuration"]["State"] == "Active"
    csc = client.get_function_code_signing_config(FunctionName=fname)
    assert csc["FunctionName"] == fname
    versions = client.list_versions_by_function(FunctionName=fname)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST"]
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.get_policy(FunctionName=fname)  # Terraform reads the 404 as "no policy"
    assert exc.value.response["Error"]["Message"] == "The resource you requested does not exist."


# -- resource policies on aliases (item 2) -----------------------------------------------------


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Any]]:
    data = tmp_path_factory.mktemp("aliaspolicy") / "data"
    data.mkdir(parents=True)
    key = create_key(data, "111111111111")
    srv = ServerProcess(data, args=("--auth", "sigv4"), prewarm="none").start()
    client = lambda_client(srv.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    yield srv, client
    srv.stop()


def test_alias_policy_makes_the_alias_url_public(
    signed_server: tuple[ServerProcess, Any],
) -> None:
    srv, client = signed_server
    name = "alias-url"
    app = make_zip({
        "app.py": "def handler(event, context):\n"
        "    return {'statusCode': 200, 'body': context.invoked_function_arn}\n"
    })  # fmt: skip
    client.create_function(
        FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::111111111111:role/r",
        Handler="app.handler", Code={"ZipFile": app}, Publish=True, Timeout=60,
    )  # fmt: skip
    wait_active(client, name)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    url = client.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    url_id = url["FunctionUrl"].split("//")[1].split(".")[0]
    target = f"{srv.url}/lambda-url/{url_id}/"
    assert httpx.get(target, timeout=30).status_code == 403  # no policy yet

    added = client.add_permission(
        FunctionName=name, Qualifier="live", StatementId="public", Principal="*",
        Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="NONE",
    )  # fmt: skip
    statement = json.loads(added["Statement"])
    alias_arn = f"arn:aws:lambda:us-east-1:111111111111:function:{name}:live"
    assert statement["Resource"] == alias_arn
    policy = json.loads(client.get_policy(FunctionName=name, Qualifier="live")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["public"]
    assert json.loads(client.get_policy(FunctionName=alias_arn)["Policy"]) == policy
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_policy(FunctionName=name)  # the function itself has none

    reply = httpx.get(target, timeout=90)  # unsigned
    assert (reply.status_code, reply.text) == (200, alias_arn), srv.log.read_text()[-3000:]

    client.remove_permission(FunctionName=name, Qualifier="live", StatementId="public")
    assert httpx.get(target, timeout=30).status_code == 403
    # The alias named by its ARN alone, as tools do.
    client.add_permission(
        FunctionName=alias_arn, StatementId="by-arn", Principal="*",
        Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="NONE",
    )  # fmt: skip
    assert httpx.get(target, timeout=90).status_code == 200
    client.remove_permission(FunctionName=alias_arn, StatementId="by-arn")
    assert httpx.get(target, timeout=30).status_code == 403
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.remove_permission(FunctionName=name, Qualifier="gone", StatementId="public")
    assert exc.value.response["Error"]["Message"] == f"Cannot find alias arn: {alias_arn[:-4]}gone"


# -- what brazier serves (item 7) --------------------------------------------------------------


def test_an_unimplemented_operation_is_named(client: Any, server: ServerProcess) -> None:
    from brazier import __version__

    with pytest.raises(client.exceptions.ClientError) as exc:
        client.get_function_recursion_config(FunctionName="any")
    err = exc.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert err["Error"]["Code"] == "UnknownOperationException"
    assert err["Error"]["Message"] == (
        f"Brazier {__version__} does not implement the Lambda operation GetFunctionRecursionConfig."
    )
    reply = httpx.post(server.url + "/2031-01-01/functions/x/teleport")  # a newer model's route
    assert reply.status_code == 404
    message = reply.json()["message"]
    assert "POST /2031-01-01/functions/x/teleport" in message and __version__ in message


def test_api_coverage_command() -> None:
    import subprocess
    import sys

    import botocore.session

    out = subprocess.run(
        [sys.executable, "-m", "brazier", "api-coverage", "--json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    model = botocore.session.get_session().get_service_model("lambda")
    assert sorted(doc["implemented"] + doc["not_implemented"]) == sorted(model.operation_names)
    for served in ("GetFunctionCodeSigningConfig", "InvokeAsync", "AddPermission", "Invoke"):
        assert served in doc["implemented"]
    assert "GetFunctionRecursionConfig" in doc["not_implemented"]


def test_small_operations_through_the_aws_cli(
    server: ServerProcess, client: Any, fname: str, tmp_path: Path
) -> None:
    from test_cli import _aws

    _create(client, fname)
    out = _aws(server, "get-function-code-signing-config", "--function-name", fname)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"CodeSigningConfigArn": "", "FunctionName": fname}
    args = tmp_path / "args.json"
    args.write_text('{"via": "cli"}')
    out = _aws(server, "invoke-async", "--function-name", fname, "--invoke-args", str(args))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"Status": 202}
