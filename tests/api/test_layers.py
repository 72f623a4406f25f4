"""Layer operations through boto3 against a real server (every response shape-checked), the SBOM
route and ``brazier layers sbom``."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from typing import Any

import botocore.exceptions
import httpx
import pytest

from support import ROOT, make_zip

ACCOUNT = "000000000000"
LAYER_ZIP = make_zip(
    {
        "python/lib/python3.12/site-packages/requests-2.31.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n"
        ),
        "python/lib/python3.12/site-packages/requests/__init__.py": "",
    }
)
CREATED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def arn(name: str, version: int | str | None = None) -> str:
    base = f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{name}"
    return base if version is None else f"{base}:{version}"


def publish(client: Any, name: str, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"LayerName": name, "Content": {"ZipFile": LAYER_ZIP}}
    args.update(kw)
    return dict(client.publish_layer_version(**args))


def error(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_publish_and_get(client: Any, fname: str) -> None:
    out = publish(
        client, fname, Description="d", LicenseInfo="MIT",
        CompatibleRuntimes=["python3.12"], CompatibleArchitectures=["x86_64"],
    )  # fmt: skip
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert out["LayerArn"] == arn(fname)
    assert out["LayerVersionArn"] == arn(fname, 1)
    assert out["Version"] == 1
    assert out["Description"] == "d" and out["LicenseInfo"] == "MIT"
    assert out["CompatibleRuntimes"] == ["python3.12"]
    assert out["CompatibleArchitectures"] == ["x86_64"]
    assert CREATED_RE.match(out["CreatedDate"])
    sha = base64.b64encode(hashlib.sha256(LAYER_ZIP).digest()).decode()
    assert out["Content"]["CodeSha256"] == sha
    assert out["Content"]["CodeSize"] == len(LAYER_ZIP)
    assert httpx.get(out["Content"]["Location"]).content == LAYER_ZIP
    got = client.get_layer_version(LayerName=fname, VersionNumber=1)
    by_arn = client.get_layer_version_by_arn(Arn=arn(fname, 1))
    via_arn_name = client.get_layer_version(LayerName=arn(fname), VersionNumber=1)
    for o in (got, by_arn, via_arn_name):
        assert o["LayerVersionArn"] == arn(fname, 1) and o["CreatedDate"] == out["CreatedDate"]
    assert publish(client, fname)["Version"] == 2


def test_publish_without_optional_fields_omits_them(client: Any, fname: str) -> None:
    out = publish(client, fname)
    assert out["Description"] == ""
    for key in ("CompatibleRuntimes", "CompatibleArchitectures", "LicenseInfo"):
        assert key not in out
    empty = publish(client, fname, CompatibleRuntimes=[], CompatibleArchitectures=[])
    assert empty["CompatibleRuntimes"] == [] and empty["CompatibleArchitectures"] == []


def test_publish_errors(client: Any, raw_client: Any, fname: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        publish(raw_client, fname, CompatibleRuntimes=["invalidruntime"])
    code, message, status = error(exc)
    assert (code, status) == ("ValidationException", 400)
    assert "at 'compatibleRuntimes" in message  # AWS aggregates list members; see report
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        publish(client, fname, Content={"ZipFile": b"not a zip"})
    assert error(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        publish(client, fname, Content={"S3Bucket": "bucket", "S3Key": "k"})
    assert error(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        publish(client, fname, Description="semver:1.x")
    assert "invalid semantic version" in error(exc)[1]
    publish(client, fname, Description="semver:1.0.0 first")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        publish(client, fname, Description="semver:1.0.0 again")
    assert error(exc)[::2] == ("ResourceConflictException", 409)


def test_get_errors(client: Any, fname: str) -> None:
    publish(client, fname)
    not_found = ("ResourceNotFoundException", "The resource you requested does not exist.", 404)
    for call in (
        lambda: client.get_layer_version(LayerName=f"{fname}-nope", VersionNumber=1),
        lambda: client.get_layer_version(LayerName=fname, VersionNumber=2),
        lambda: client.get_layer_version_by_arn(Arn=arn(fname, 2)),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert error(exc) == not_found
    for v in (0, -1):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client.get_layer_version(LayerName=fname, VersionNumber=v)
        assert error(exc) == (
            "InvalidParameterValueException",
            "Layer Version Cannot be less than 1",
            400,
        )
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.get_layer_version_by_arn(Arn=arn(fname))
    code, message, _ = error(exc)
    assert code == "ValidationException"
    assert message.startswith(f"1 validation error detected: Value '{arn(fname)}' at 'arn'")


def test_list_versions_filters_and_pages(client: Any, raw_client: Any, fname: str) -> None:
    publish(client, fname, CompatibleRuntimes=["python3.12"], CompatibleArchitectures=["x86_64"])
    publish(client, fname, CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["arm64"])
    publish(client, fname)
    out = client.list_layer_versions(LayerName=fname)["LayerVersions"]
    assert [v["Version"] for v in out] == [3, 2, 1]
    assert "Content" not in out[0] and "LayerArn" not in out[0]
    py = client.list_layer_versions(LayerName=fname, CompatibleRuntime="python3.12")
    assert [v["Version"] for v in py["LayerVersions"]] == [1]
    arm = client.list_layer_versions(LayerName=fname, CompatibleArchitecture="arm64")
    assert [v["Version"] for v in arm["LayerVersions"]] == [2]
    page = client.list_layer_versions(LayerName=fname, MaxItems=2)
    assert [v["Version"] for v in page["LayerVersions"]] == [3, 2]
    rest = client.list_layer_versions(LayerName=fname, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["LayerVersions"]] == [1] and "NextMarker" not in rest
    paged = client.get_paginator("list_layer_versions").paginate(
        LayerName=fname, PaginationConfig={"PageSize": 1}
    )
    assert [v["Version"] for p in paged for v in p["LayerVersions"]] == [3, 2, 1]
    assert client.list_layer_versions(LayerName=f"{fname}-none")["LayerVersions"] == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        raw_client.list_layer_versions(LayerName=fname, CompatibleRuntime="runtimedoesnotexist")
    assert "at 'compatibleRuntime' failed to satisfy constraint" in error(exc)[1]


def test_list_layers_latest_matching(client: Any, raw_client: Any, fname: str) -> None:
    a, b = f"{fname}-a", f"{fname}-b"
    publish(client, a, CompatibleRuntimes=["python3.12"])
    publish(client, a, CompatibleRuntimes=["nodejs20.x"])
    publish(client, b, CompatibleRuntimes=["python3.12"], CompatibleArchitectures=["arm64"])
    layers = {
        x["LayerName"]: x
        for p in client.get_paginator("list_layers").paginate(PaginationConfig={"PageSize": 1})
        for x in p["Layers"]
    }
    assert layers[a]["LayerArn"] == arn(a)
    assert layers[a]["LatestMatchingVersion"]["Version"] == 2
    assert layers[a]["LatestMatchingVersion"]["LayerVersionArn"] == arn(a, 2)
    py = {x["LayerName"]: x for x in client.list_layers(CompatibleRuntime="python3.12")["Layers"]}
    assert py[a]["LatestMatchingVersion"]["Version"] == 1 and b in py
    arm = {x["LayerName"] for x in client.list_layers(CompatibleArchitecture="arm64")["Layers"]}
    assert b in arm and a not in arm
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        raw_client.list_layers(CompatibleArchitecture="archdoesnotexist")
    assert error(exc)[1] == (
        "1 validation error detected: Value 'archdoesnotexist' at 'compatibleArchitecture' failed"
        " to satisfy constraint: Member must satisfy enum value set: [x86_64, arm64]"
    )


def test_delete_is_idempotent_and_numbers_are_not_reused(client: Any, fname: str) -> None:
    publish(client, fname)
    publish(client, fname)
    for v in (1, 1, 2, 99):
        out = client.delete_layer_version(LayerName=fname, VersionNumber=v)
        assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    client.delete_layer_version(LayerName=f"{fname}-none", VersionNumber=1)
    assert client.list_layer_versions(LayerName=fname)["LayerVersions"] == []
    assert fname not in {x["LayerName"] for x in client.list_layers()["Layers"]}
    assert publish(client, fname)["Version"] == 3
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.delete_layer_version(LayerName=fname, VersionNumber=0)
    assert error(exc)[1] == "Layer Version Cannot be less than 1"


def test_permission_lifecycle(client: Any, fname: str) -> None:
    publish(client, fname)
    add = client.add_layer_version_permission(
        LayerName=fname, VersionNumber=1, StatementId="s1",
        Action="lambda:GetLayerVersion", Principal="*",
    )  # fmt: skip
    assert add["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(add["Statement"]) == {
        "Sid": "s1", "Effect": "Allow", "Principal": "*",
        "Action": "lambda:GetLayerVersion", "Resource": arn(fname, 1),
    }  # fmt: skip
    pol = client.get_layer_version_policy(LayerName=fname, VersionNumber=1)
    assert pol["RevisionId"] == add["RevisionId"]
    doc = json.loads(pol["Policy"])
    assert doc["Version"] == "2012-10-17" and doc["Id"] == "default"
    add2 = client.add_layer_version_permission(
        LayerName=fname, VersionNumber=1, StatementId="s2", Action="lambda:GetLayerVersion",
        Principal="123456789012", OrganizationId="o-abcdefghij", RevisionId=add["RevisionId"],
    )  # fmt: skip
    s2 = json.loads(add2["Statement"])
    assert s2["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert s2["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}
    client.remove_layer_version_permission(
        LayerName=fname, VersionNumber=1, StatementId="s2", RevisionId=add2["RevisionId"]
    )
    pol = client.get_layer_version_policy(LayerName=fname, VersionNumber=1)
    assert [s["Sid"] for s in json.loads(pol["Policy"])["Statement"]] == ["s1"]
    assert pol["RevisionId"] not in (add["RevisionId"], add2["RevisionId"])
    client.remove_layer_version_permission(LayerName=fname, VersionNumber=1, StatementId="s1")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.get_layer_version_policy(LayerName=fname, VersionNumber=1)
    assert error(exc) == (
        "ResourceNotFoundException",
        "No policy is associated with the given resource.",
        404,
    )


def test_permission_errors(client: Any, raw_client: Any, fname: str) -> None:
    publish(client, fname)
    perm = {"StatementId": "s1", "Action": "lambda:GetLayerVersion", "Principal": "*"}
    add = client.add_layer_version_permission(LayerName=fname, VersionNumber=1, **perm)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.add_layer_version_permission(LayerName=fname, VersionNumber=1, **perm)
    assert error(exc) == (
        "ResourceConflictException",
        "The statement id (s1) provided already exists. Please provide a new statement id, or"
        " remove the existing statement.",
        409,
    )
    mismatch = (
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetLayerPolicy"
        " API to retrieve the latest Revision Id",
        412,
    )
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.add_layer_version_permission(
            LayerName=fname, VersionNumber=1, **{**perm, "StatementId": "s2"}, RevisionId="x"
        )
    assert error(exc) == mismatch
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.remove_layer_version_permission(
            LayerName=fname, VersionNumber=1, StatementId="s1", RevisionId="x"
        )
    assert error(exc) == mismatch
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.remove_layer_version_permission(
            LayerName=fname, VersionNumber=1, StatementId="doesnotexist",
            RevisionId=add["RevisionId"],
        )  # fmt: skip
    assert error(exc)[1] == "Statement doesnotexist is not found in resource policy."
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        raw_client.add_layer_version_permission(
            LayerName=fname, VersionNumber=1, **{**perm, "Action": "*", "StatementId": "s3"}
        )
    assert error(exc)[1] == (
        "1 validation error detected: Value '*' at 'action' failed to satisfy constraint:"
        " Member must satisfy regular expression pattern: lambda:GetLayerVersion"
    )
    calls = (
        ("add_layer_version_permission", perm),
        ("get_layer_version_policy", {}),
        ("remove_layer_version_permission", {"StatementId": "s1"}),
    )
    for name, v in ((f"{fname}-doesnotexist", 1), (fname, 2)):
        for method, extra in calls:
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                getattr(client, method)(LayerName=name, VersionNumber=v, **extra)
            assert error(exc) == (
                "ResourceNotFoundException",
                f"Layer version {arn(name, v)} does not exist.",
                404,
            )


def test_semver_range_by_arn(client: Any, fname: str) -> None:
    publish(client, fname, Description="semver:1.4.2 first")
    publish(client, fname, Description="semver:1.5.0")
    publish(client, fname, Description="semver:2.0.0")
    publish(client, fname, Description="no semver")
    for rng, want in (("^1.4", 2), ("~1.4.2", 1), ("1.x", 2), ("=1.4.2", 1), ("^2", 3)):
        assert client.get_layer_version_by_arn(Arn=arn(fname, rng))["Version"] == want
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.get_layer_version_by_arn(Arn=arn(fname, "^3"))
    assert error(exc)[0] == "ResourceNotFoundException"
    # The function edge takes ranges too (the pattern extension), and refuses junk with AWS's text.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.get_layer_version_by_arn(Arn=arn(fname, "^1.4$"))
    assert error(exc)[0] == "ValidationException"


def test_sbom_route_and_cli(server: Any, client: Any, fname: str) -> None:
    publish(client, fname, Description="semver:0.3.0")
    url = f"{server.url}/_brazier/v1/layers/{fname}/versions/1/sbom"
    reply = httpx.get(url)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/vnd.cyclonedx+json")
    bom = reply.json()
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    assert bom["metadata"]["component"]["bom-ref"] == arn(fname, 1)
    assert bom["metadata"]["component"]["version"] == "0.3.0"
    assert [c["purl"] for c in bom["components"]] == ["pkg:pypi/requests@2.31.0"]
    missing = httpx.get(f"{server.url}/_brazier/v1/layers/{fname}/versions/9/sbom")
    assert missing.status_code == 404
    assert missing.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    out = subprocess.run(
        [sys.executable, "-m", "brazier", "layers", "sbom", f"{fname}:1",
         "--endpoint-url", server.url],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["components"][0]["name"] == "requests"
    out = subprocess.run(
        [sys.executable, "-m", "brazier", "layers", "sbom", f"{fname}:7",
         "--endpoint-url", server.url],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 1 and "ResourceNotFoundException" in out.stderr
