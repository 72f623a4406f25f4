"""CreateFunction, Get*, List, Update*, Delete through boto3 against a real server."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import httpx
import pytest

from support import HELLO_PY, make_zip, wait_active

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
ARN_RE = re.compile(r"^arn:aws:lambda:us-east-1:000000000000:function:[\w-]+$")
LAST_MODIFIED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def create(client: Any, name: str, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": HELLO_PY},
    }
    args.update(kw)
    return dict(client.create_function(**args))


def test_create_function_returns_pending_then_active(client: Any, fname: str) -> None:
    out = create(client, fname, Timeout=5, MemorySize=256, Description="d")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert out["State"] == "Pending"
    assert out["StateReason"] == "The function is being created."
    assert out["StateReasonCode"] == "Creating"
    assert "LastUpdateStatus" not in out
    assert out["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    assert out["Version"] == "$LATEST"
    assert out["CodeSha256"] == base64.b64encode(hashlib.sha256(HELLO_PY).digest()).decode()
    assert out["CodeSize"] == len(HELLO_PY)
    assert LAST_MODIFIED_RE.match(out["LastModified"])
    assert out["MemorySize"] == 256 and out["Timeout"] == 5 and out["Description"] == "d"
    assert out["EphemeralStorage"] == {"Size": 512}
    assert out["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{fname}"}
    assert out["TracingConfig"] == {"Mode": "PassThrough"}
    assert out["Architectures"] == ["x86_64"]
    assert out["PackageType"] == "Zip"
    active = wait_active(client, fname)
    assert active["State"] == "Active"
    assert active["LastUpdateStatus"] == "Successful"
    assert "StateReason" not in active
    assert active["RevisionId"] != out["RevisionId"]


def test_waiter_function_active_v2(client: Any, fname: str) -> None:
    create(client, fname)
    client.get_waiter("function_active_v2").wait(
        FunctionName=fname, WaiterConfig={"Delay": 1, "MaxAttempts": 10}
    )
    assert client.get_function(FunctionName=fname)["Configuration"]["State"] == "Active"


def test_get_function_code_location_serves_the_zip(client: Any, fname: str) -> None:
    create(client, fname)
    out = client.get_function(FunctionName=fname)
    assert out["Code"]["RepositoryType"] == "S3"
    reply = httpx.get(out["Code"]["Location"])
    assert reply.status_code == 200
    assert reply.content == HELLO_PY
    tampered = out["Code"]["Location"].replace("Signature=", "Signature=0")
    assert httpx.get(tampered).status_code == 403


def test_get_by_arn_partial_arn_and_qualifier(client: Any, fname: str) -> None:
    create(client, fname)
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    for ref in (arn, f"000000000000:function:{fname}", f"{arn}:$LATEST"):
        assert client.get_function_configuration(FunctionName=ref)["FunctionName"] == fname
    got = client.get_function_configuration(FunctionName=fname, Qualifier="$LATEST")
    assert got["FunctionArn"] == f"{arn}:$LATEST"  # the ARN names what was asked for


def test_not_found_errors(client: Any) -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:does-not-exist"
    for call in (client.get_function, client.get_function_configuration, client.delete_function):
        with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
            call(FunctionName="does-not-exist")
        assert exc.value.response["Error"]["Message"] == f"Function not found: {arn}"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.get_function(FunctionName="does-not-exist", Qualifier="$latest")
    assert exc.value.response["Error"]["Message"] == f"Function not found: {arn}:$latest"


def test_wrong_region_and_qualifier_mismatch(client: Any, fname: str) -> None:
    create(client, fname)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.get_function(FunctionName=f"arn:aws:lambda:eu-west-1:000000000000:function:{fname}")
    assert exc.value.response["Error"]["Message"] == (
        "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')"
    )
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.get_function(FunctionName=f"{fname}:$LATEST", Qualifier="1")
    assert "derived qualifier" in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"FunctionName": "bad name!"}, "at 'functionName' failed to satisfy constraint"),
        ({"FunctionName": "x" * 141}, "Member must have length less than or equal to 140"),
        ({"MemorySize": 64}, "Member must have value greater than or equal to 128"),
        ({"MemorySize": 10241}, "Member must have value less than or equal to 10240"),
        ({"Timeout": 0}, "Member must have value greater than or equal to 1"),
        ({"Timeout": 901}, "Member must have value less than or equal to 900"),
        ({"EphemeralStorage": {"Size": 100}}, "greater than or equal to 512"),
        ({"Role": "not-a-role"}, "at 'role' failed to satisfy constraint"),
    ],
)
def test_create_validation_errors(raw_client: Any, fname: str, kwargs: Any, needle: str) -> None:
    with pytest.raises(raw_client.exceptions.ClientError) as exc:
        create(raw_client, fname, **kwargs)
    err = exc.value.response["Error"]
    assert err["Code"] == "ValidationException"
    assert needle in err["Message"]
    assert err["Message"].startswith("1 validation error detected: Value ")


def test_create_invalid_parameter_values(client: Any, fname: str) -> None:
    cases = [
        ({"Runtime": "python3.7"}, "The runtime parameter of python3.7 is no longer supported"),
        ({"Environment": {"Variables": {"BIG": "x" * 5000}}}, "exceeded the 4KB limit"),
        ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "reserved keys"),
        ({"Code": {"ZipFile": b""}}, "Uploaded file must be a non-empty zip"),
        ({"Code": {"ZipFile": b"PK\x03\x04 not really a zip"}}, "Could not unzip uploaded file"),
        ({"Layers": [f"arn:aws:lambda:us-east-1:000000000000:layer:l{i}:1" for i in range(6)]},
         "more than 5 layers"),
    ]  # fmt: skip
    for kwargs, needle in cases:
        with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
            create(client, fname, **kwargs)
        assert needle in exc.value.response["Error"]["Message"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=fname)


def test_environment_key_pattern(client: Any, fname: str) -> None:
    with pytest.raises(client.exceptions.ClientError) as exc:
        create(client, fname, Environment={"Variables": {"A": "1"}})
    err = exc.value.response["Error"]
    assert err["Code"] == "ValidationException"
    assert (
        "Value at 'environment.variables' failed to satisfy constraint: Map keys" in err["Message"]
    )
    assert "'1'" not in err["Message"]  # values are sensitive and never echoed


def test_unsupported_settings_are_refused_not_ignored(client: Any, fname: str) -> None:
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        create(client, fname, VpcConfig={"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]})
    assert "VpcConfig" in str(exc.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        create(client, fname, Architectures=["arm64"])  # this host runs x86_64 natively
    assert "cannot run here" in str(exc.value)
    create(client, fname, VpcConfig={"SubnetIds": [], "SecurityGroupIds": []})  # empty is fine
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.update_function_configuration(
            FunctionName=fname, SnapStart={"ApplyOn": "PublishedVersions"}
        )
    assert "SnapStart" in str(exc.value)


def test_create_duplicate_conflicts(client: Any, fname: str) -> None:
    create(client, fname)
    with pytest.raises(client.exceptions.ResourceConflictException) as exc:
        create(client, fname)
    assert exc.value.response["Error"]["Message"] == f"Function already exist: {fname}"


def test_update_configuration(client: Any, fname: str) -> None:
    before = create(client, fname)
    wait_active(client, fname)
    layer = client.publish_layer_version(
        LayerName=f"{fname}-dep", Content={"ZipFile": make_zip({"python/dep.py": "X = 1\n"})}
    )
    out = client.update_function_configuration(
        FunctionName=fname,
        Environment={"Variables": {"AB": "1"}},
        MemorySize=1024,
        Timeout=30,
        Handler="other.handler",
        Runtime="python3.12",
        Description="updated",
        EphemeralStorage={"Size": 2048},
        Layers=[layer["LayerVersionArn"]],
        LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"},
        TracingConfig={"Mode": "Active"},
    )
    assert out["LastUpdateStatus"] == "InProgress"
    assert out["LastUpdateStatusReasonCode"] == "Creating"
    assert out["RevisionId"] != before["RevisionId"]
    after = wait_active(client, fname)
    assert after["LastUpdateStatus"] == "Successful"
    assert after["Environment"] == {"Variables": {"AB": "1"}}
    assert (after["MemorySize"], after["Timeout"]) == (1024, 30)
    assert after["Handler"] == "other.handler" and after["Runtime"] == "python3.12"
    assert after["EphemeralStorage"] == {"Size": 2048}
    assert after["Layers"] == [
        {"Arn": layer["LayerVersionArn"], "CodeSize": layer["Content"]["CodeSize"]}
    ]
    assert after["LoggingConfig"]["LogFormat"] == "JSON"
    assert after["LoggingConfig"]["ApplicationLogLevel"] == "DEBUG"
    assert after["LoggingConfig"]["SystemLogLevel"] == "INFO"
    assert after["TracingConfig"] == {"Mode": "Active"}
    assert after["CodeSha256"] == before["CodeSha256"]


def test_update_configuration_revision_precondition(client: Any, fname: str) -> None:
    create(client, fname)
    wait_active(client, fname)
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.update_function_configuration(FunctionName=fname, Timeout=9, RevisionId="nope")
    rev = client.get_function_configuration(FunctionName=fname)["RevisionId"]
    client.update_function_configuration(FunctionName=fname, Timeout=9, RevisionId=rev)
    assert wait_active(client, fname)["Timeout"] == 9


def test_update_code(client: Any, fname: str) -> None:
    create(client, fname)
    wait_active(client, fname)
    new = make_zip({"app.py": "def handler(e, c):\n    return 2\n"})
    out = client.update_function_code(FunctionName=fname, ZipFile=new)
    assert out["LastUpdateStatus"] == "InProgress"
    assert out["CodeSha256"] == base64.b64encode(hashlib.sha256(new).digest()).decode()
    wait_active(client, fname)
    loc = client.get_function(FunctionName=fname)["Code"]["Location"]
    assert httpx.get(loc).content == new
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.update_function_code(FunctionName=fname, ZipFile=b"garbage")
    assert client.get_function_configuration(FunctionName=fname)["CodeSha256"] == out["CodeSha256"]


def test_list_functions_pagination_and_all_versions(
    client: Any, raw_client: Any, fname: str
) -> None:
    names = [f"{fname}-{i}" for i in range(5)]
    for n in names:
        create(client, n)
    seen: list[str] = []
    marker = None
    while True:
        kw: dict[str, Any] = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = client.list_functions(**kw)
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert [n for n in seen if n.startswith(fname)] == names
    assert len(seen) == len(set(seen))
    everything = client.get_paginator("list_functions").paginate(FunctionVersion="ALL")
    all_names = [f["FunctionName"] for p in everything for f in p["Functions"]]
    assert set(names) <= set(all_names)
    with pytest.raises(raw_client.exceptions.ClientError) as exc:
        raw_client.list_functions(MaxItems=0)
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_delete_function(client: Any, fname: str) -> None:
    create(client, fname)
    out = client.delete_function(FunctionName=fname)
    assert out["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=fname)
    create(client, fname)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.delete_function(FunctionName=fname, Qualifier="$LATEST")
    assert "$LATEST version cannot be deleted" in exc.value.response["Error"]["Message"]


def test_account_settings(client: Any, fname: str) -> None:
    before = client.get_account_settings()
    create(client, fname)
    after = client.get_account_settings()
    assert after["AccountLimit"]["CodeSizeZipped"] == 52428800
    assert after["AccountLimit"]["CodeSizeUnzipped"] == 262144000
    assert after["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert after["AccountUsage"]["FunctionCount"] == before["AccountUsage"]["FunctionCount"] + 1
    grew = after["AccountUsage"]["TotalCodeSize"] - before["AccountUsage"]["TotalCodeSize"]
    assert grew == len(HELLO_PY)


def test_unknown_route_is_aws_shaped(server: Any) -> None:
    reply = httpx.get(server.url + "/2015-03-31/nothing-here")
    assert reply.status_code == 404
    assert reply.headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_health(server: Any) -> None:
    reply = httpx.get(server.url + "/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok" and body["version"] and body["uptime"] >= 0
