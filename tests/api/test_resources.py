"""Tags, permissions (resource policies)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from test_functions import create


def test_tag_lifecycle(client: Any, fname: str) -> None:
    arn = create(client, fname, Tags={"team": "a"})["FunctionArn"]
    assert client.list_tags(Resource=arn)["Tags"] == {"team": "a"}
    client.tag_resource(Resource=arn, Tags={"env": "prod", "team": "b"})
    assert client.list_tags(Resource=arn)["Tags"] == {"team": "b", "env": "prod"}
    assert client.get_function(FunctionName=fname)["Tags"] == {"team": "b", "env": "prod"}
    client.untag_resource(Resource=arn, TagKeys=["team", "missing"])
    assert client.list_tags(Resource=arn)["Tags"] == {"env": "prod"}


def test_tag_errors(client: Any, fname: str) -> None:
    arn = create(client, fname)["FunctionArn"]
    missing = "arn:aws:lambda:us-east-1:000000000000:function:doesnotexist"
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.tag_resource(Resource=missing, Tags={"a": "b"})
    assert exc.value.response["Error"]["Message"] == f"Function not found: {missing}"
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.tag_resource(Resource=f"{arn}:$LATEST", Tags={"a": "b"})
    assert "Tags on function aliases and versions are not supported" in str(exc.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.tag_resource(Resource=arn, Tags={})
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.tag_resource(Resource=arn, Tags={f"k{i}": "v" for i in range(51)})
    assert exc.value.response["Error"]["Message"] == "Number of tags exceeds resource tag limit."
    with pytest.raises(client.exceptions.ClientError) as exc:
        client.list_tags(Resource="arn:aws:something")
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_permissions_lifecycle(client: Any, fname: str) -> None:
    arn = create(client, fname)["FunctionArn"]
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.get_policy(FunctionName=fname)
    assert exc.value.response["Error"]["Message"] == "The resource you requested does not exist."
    s3 = client.add_permission(
        FunctionName=fname,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::bucket",
        SourceAccount="000000000000",
    )
    assert s3["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(s3["Statement"]) == {
        "Sid": "s3",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": arn,
        "Condition": {
            "StringEquals": {"AWS:SourceAccount": "000000000000"},
            "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"},
        },
    }
    client.add_permission(
        FunctionName=fname, StatementId="url", Action="lambda:InvokeFunctionUrl",
        Principal="*", FunctionUrlAuthType="NONE",
    )  # fmt: skip
    policy = client.get_policy(FunctionName=fname)
    doc = json.loads(policy["Policy"])
    assert doc["Version"] == "2012-10-17" and doc["Id"] == "default"
    assert [s["Sid"] for s in doc["Statement"]] == ["s3", "url"]
    assert doc["Statement"][1]["Principal"] == "*"
    with pytest.raises(client.exceptions.ResourceConflictException) as exc:
        client.add_permission(
            FunctionName=fname, StatementId="s3", Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
        )  # fmt: skip
    assert "The statement id (s3) provided already exists" in str(exc.value)
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.remove_permission(FunctionName=fname, StatementId="s3", RevisionId="stale")
    client.remove_permission(FunctionName=fname, StatementId="s3", RevisionId=policy["RevisionId"])
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.remove_permission(FunctionName=fname, StatementId="s3")
    assert exc.value.response["Error"]["Message"] == "Statement s3 is not found in resource policy."
    client.remove_permission(FunctionName=fname, StatementId="url")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_policy(FunctionName=fname)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.remove_permission(FunctionName=fname, StatementId="url")
    assert "No policy is associated with the given resource." in str(exc.value)


def test_permission_errors(client: Any, fname: str) -> None:
    create(client, fname)
    base = {"FunctionName": fname, "Action": "lambda:InvokeFunction"}
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.add_permission(**base, StatementId="x", Principal="not:a:principal")
    assert "The provided principal was invalid" in str(exc.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.add_permission(**base, StatementId="x", Principal="*", Qualifier="$LATEST")
    assert "We currently do not support adding policies for $LATEST." in str(exc.value)
    with pytest.raises(client.exceptions.ClientError) as exc:
        client.add_permission(**base, StatementId="example.com", Principal="*")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.add_permission(**base, StatementId="x", Principal="*", Qualifier="42")
    assert exc.value.response["Error"]["Message"].endswith(f"function:{fname}:42")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.add_permission(**{**base, "FunctionName": "doesnotexist"}, StatementId="x",
                              Principal="*")  # fmt: skip
    assert "Function not found" in str(exc.value)
    account = client.add_permission(**base, StatementId="acct", Principal="111122223333")
    assert json.loads(account["Statement"])["Principal"] == {
        "AWS": "arn:aws:iam::111122223333:root"
    }
