"""Versions, aliases, reserved concurrency, event invoke configs: the control plane."""

from __future__ import annotations

from typing import Any

import pytest

from support import make_zip, wait_active
from test_functions import create


def _ready(client: Any, name: str, **kw: Any) -> dict[str, Any]:
    out = create(client, name, **kw)
    wait_active(client, name)
    return out


def test_publish_and_list_versions(client: Any, fname: str) -> None:
    _ready(client, fname)
    v1 = client.publish_version(FunctionName=fname, Description="first")
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Version"] == "1"
    assert v1["FunctionArn"].endswith(f":function:{fname}:1")
    assert v1["State"] == "Active" and v1["LastUpdateStatus"] == "Successful"
    assert v1["Description"] == "first"
    # Nothing changed: the same version comes back.
    again = client.publish_version(FunctionName=fname, Description="first")
    assert again["Version"] == "1"
    client.update_function_configuration(FunctionName=fname, Timeout=9)
    wait_active(client, fname)
    v2 = client.publish_version(FunctionName=fname)
    assert v2["Version"] == "2"
    assert v2["Timeout"] == 9
    assert client.get_function_configuration(FunctionName=fname, Qualifier="1")["Timeout"] == 3
    versions = client.list_versions_by_function(FunctionName=fname)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    page = client.list_versions_by_function(FunctionName=fname, MaxItems=2)
    assert len(page["Versions"]) == 2
    rest = client.list_versions_by_function(FunctionName=fname, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2"]
    all_versions = client.list_functions(FunctionVersion="ALL")["Functions"]
    assert {f["Version"] for f in all_versions if f["FunctionName"] == fname} == {
        "$LATEST",
        "1",
        "2",
    }


def test_publish_preconditions(client: Any, fname: str) -> None:
    _ready(client, fname)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.publish_version(FunctionName=fname, CodeSha256="wrong")
    assert "is different from current CodeSHA256 in $LATEST" in str(exc.value)
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.publish_version(FunctionName=fname, RevisionId="stale")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.publish_version(FunctionName="no-such-function")


def test_create_with_publish_and_update_code_with_publish(client: Any, fname: str) -> None:
    out = create(client, fname, Publish=True)
    assert out["Version"] == "1"
    assert out["FunctionArn"].endswith(f":function:{fname}")  # AWS's recorded quirk
    wait_active(client, fname)
    v1 = client.get_function_configuration(FunctionName=fname, Qualifier="1")
    assert v1["State"] == "Active"
    new = make_zip({"app.py": "def handler(e, c):\n    return 2\n"})
    out = client.update_function_code(FunctionName=fname, ZipFile=new, Publish=True)
    assert out["Version"] == "2"


def test_delete_version(client: Any, fname: str) -> None:
    _ready(client, fname)
    client.publish_version(FunctionName=fname)
    client.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    with pytest.raises(client.exceptions.ResourceConflictException) as exc:
        client.delete_function(FunctionName=fname, Qualifier="1")
    assert "aliases reference it: [live]" in str(exc.value)
    client.delete_alias(FunctionName=fname, Name="live")
    client.delete_function(FunctionName=fname, Qualifier="1")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=fname, Qualifier="1")
    # Numbers are never reused.
    client.update_function_configuration(FunctionName=fname, Timeout=4)
    wait_active(client, fname)
    assert client.publish_version(FunctionName=fname)["Version"] == "2"


def test_alias_lifecycle(client: Any, fname: str) -> None:
    _ready(client, fname)
    client.publish_version(FunctionName=fname)
    client.update_function_configuration(FunctionName=fname, Timeout=5)
    wait_active(client, fname)
    client.publish_version(FunctionName=fname)
    created = client.create_alias(
        FunctionName=fname, Name="live", FunctionVersion="1", Description="d",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}},
    )  # fmt: skip
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"].endswith(f":function:{fname}:live")
    assert created["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.25}}
    got = client.get_alias(FunctionName=fname, Name="live")
    assert got["RevisionId"] == created["RevisionId"]
    with pytest.raises(client.exceptions.ResourceConflictException) as exc:
        client.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    assert f"Alias already exists: {created['AliasArn']}" in str(exc.value)
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.update_alias(FunctionName=fname, Name="live", FunctionVersion="2", RevisionId="x")
    updated = client.update_alias(
        FunctionName=fname, Name="live", FunctionVersion="2", RevisionId=got["RevisionId"],
        RoutingConfig={"AdditionalVersionWeights": {}},
    )  # fmt: skip
    assert updated["FunctionVersion"] == "2"
    assert "RoutingConfig" not in updated or not updated["RoutingConfig"].get(
        "AdditionalVersionWeights"
    )
    assert client.get_function_configuration(FunctionName=fname, Qualifier="live")["Timeout"] == 5
    client.create_alias(FunctionName=fname, Name="old", FunctionVersion="1")
    names = [a["Name"] for a in client.list_aliases(FunctionName=fname)["Aliases"]]
    assert names == ["live", "old"]
    only_v1 = client.list_aliases(FunctionName=fname, FunctionVersion="1")["Aliases"]
    assert [a["Name"] for a in only_v1] == ["old"]
    client.delete_alias(FunctionName=fname, Name="old")
    client.delete_alias(FunctionName=fname, Name="old")  # idempotent, as Lambda
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.get_alias(FunctionName=fname, Name="old")
    assert "Cannot find alias arn: " in str(exc.value)


def test_alias_validation(client: Any, raw_client: Any, fname: str) -> None:
    _ready(client, fname)
    client.publish_version(FunctionName=fname)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.create_alias(FunctionName=fname, Name="a", FunctionVersion="9")
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.create_alias(
            FunctionName=fname, Name="a", FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
        )  # fmt: skip
    assert "is already included in routing configuration" in str(exc.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.create_alias(
            FunctionName=fname, Name="a", FunctionVersion="$LATEST",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
        )  # fmt: skip
    assert "$LATEST is not supported for an alias pointing to more than 1 version" in str(exc.value)
    with pytest.raises(raw_client.exceptions.ClientError) as exc:
        raw_client.create_alias(FunctionName=fname, Name="2024", FunctionVersion="1")
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_reserved_concurrency(client: Any, fname: str) -> None:
    arn = _ready(client, fname)["FunctionArn"]
    base = client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert (
        client.get_function_concurrency(FunctionName=fname).get("ReservedConcurrentExecutions")
        is None
    )
    out = client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=5)
    assert out["ReservedConcurrentExecutions"] == 5
    assert client.get_function_concurrency(FunctionName=fname)["ReservedConcurrentExecutions"] == 5
    assert client.get_function(FunctionName=fname)["Concurrency"] == {
        "ReservedConcurrentExecutions": 5
    }
    after = client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert after == base - 5
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=100000)
    assert "below its minimum value" in str(exc.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.put_function_concurrency(FunctionName=f"{arn}:1", ReservedConcurrentExecutions=1)
    assert "Aliases and versions do not support this operation" in str(exc.value)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_function_concurrency(FunctionName="nope", ReservedConcurrentExecutions=1)
    client.delete_function_concurrency(FunctionName=fname)
    assert client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == base


def test_event_invoke_config(client: Any, fname: str) -> None:
    _ready(client, fname)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.get_function_event_invoke_config(FunctionName=fname)
    assert "doesn't have an EventInvokeConfig" in str(exc.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.put_function_event_invoke_config(FunctionName=fname)
    assert "You must specify at least one of error handling or destination setting." in str(
        exc.value
    )
    out = client.put_function_event_invoke_config(
        FunctionName=fname, MaximumRetryAttempts=1, MaximumEventAgeInSeconds=120,
        DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}},
    )  # fmt: skip
    assert out["FunctionArn"].endswith(f":function:{fname}:$LATEST")
    assert out["MaximumRetryAttempts"] == 1
    updated = client.update_function_event_invoke_config(FunctionName=fname, MaximumRetryAttempts=0)
    assert updated["MaximumRetryAttempts"] == 0
    assert updated["MaximumEventAgeInSeconds"] == 120
    listed = client.list_function_event_invoke_configs(FunctionName=fname)
    assert len(listed["FunctionEventInvokeConfigs"]) == 1
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_function_event_invoke_config(
            FunctionName=fname,
            DestinationConfig={
                "OnSuccess": {
                    "Destination": f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
                }
            },
        )
    client.delete_function_event_invoke_config(FunctionName=fname)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_event_invoke_config(FunctionName=fname)
