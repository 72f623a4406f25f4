"""The CycloneDX 1.5 bill of materials, validated against the official 1.5 JSON schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from brazier.control import sbom

SITE = "python/lib/python3.12/site-packages"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _validate(doc: dict[str, Any]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(doc))
    assert error is None, str(error)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    _write(
        tmp_path,
        {
            f"{SITE}/Requests_Toolbelt-1.0.0.dist-info/METADATA": (
                "Metadata-Version: 2.4\nName: Requests_Toolbelt\nVersion: 1.0.0\n"
                "License-Expression: Apache-2.0\n"
            ),
            f"{SITE}/six-1.16.0.dist-info/METADATA": (
                "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n"
                "Classifier: License :: OSI Approved :: MIT License\n\nlong description\n"
            ),
            f"{SITE}/old-0.1-py3.12.egg-info/PKG-INFO": (
                "Metadata-Version: 1.0\nName: old\nVersion: 0.1\nLicense: UNKNOWN\n"
            ),
            f"{SITE}/single-2.0.egg-info": "Metadata-Version: 1.0\nName: single\nVersion: 2.0\n",
            f"{SITE}/broken-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: broken\n",
            "nodejs/node_modules/left-pad/package.json": json.dumps(
                {"name": "left-pad", "version": "1.3.0", "license": "WTFPL"}
            ),
            "nodejs/node_modules/@aws-sdk/client-s3/package.json": json.dumps(
                {"name": "@aws-sdk/client-s3", "version": "3.1.0", "license": "Apache-2.0"}
            ),
            # nested dependency, deprecated licence object, and a non-package package.json
            "nodejs/node_modules/a/node_modules/b/package.json": json.dumps(
                {"name": "b", "version": "0.0.1", "license": {"type": "MIT"}}
            ),
            "nodejs/node_modules/left-pad/lib/package.json": json.dumps(
                {"name": "not-a-package", "version": "9.9.9"}
            ),
            "nodejs/node_modules/bad/package.json": "{not json",
            # a duplicate (same purl) elsewhere is listed once
            "nodejs/node20/node_modules/left-pad/package.json": json.dumps(
                {"name": "left-pad", "version": "1.3.0"}
            ),
        },
    )
    return tmp_path


def test_scan_finds_python_and_npm_packages(tree: Path) -> None:
    comps = {c["purl"]: c for c in sbom.scan(tree)}
    assert sorted(comps) == [
        "pkg:npm/%40aws-sdk/client-s3@3.1.0",
        "pkg:npm/b@0.0.1",
        "pkg:npm/left-pad@1.3.0",
        "pkg:pypi/old@0.1",
        "pkg:pypi/requests-toolbelt@1.0.0",
        "pkg:pypi/single@2.0",
        "pkg:pypi/six@1.16.0",
    ]
    assert comps["pkg:pypi/requests-toolbelt@1.0.0"]["name"] == "Requests_Toolbelt"
    assert comps["pkg:pypi/requests-toolbelt@1.0.0"]["licenses"] == [{"expression": "Apache-2.0"}]
    assert comps["pkg:pypi/six@1.16.0"]["licenses"] == [{"license": {"name": "MIT License"}}]
    assert "licenses" not in comps["pkg:pypi/old@0.1"]
    assert comps["pkg:npm/b@0.0.1"]["licenses"] == [{"expression": "MIT"}]
    scoped = comps["pkg:npm/%40aws-sdk/client-s3@3.1.0"]
    assert scoped["name"] == "@aws-sdk/client-s3" and scoped["bom-ref"] == scoped["purl"]


def test_document_is_valid_cyclonedx_1_5(tree: Path) -> None:
    serial = uuid.UUID("12345678-1234-5678-1234-567812345678")
    doc = sbom.build_sbom(
        tree, name="deps", version="1.4.2", bom_ref="arn:aws:lambda:us-east-1:0:layer:deps:3",
        serial=serial, now=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
    )  # fmt: skip
    _validate(doc)
    assert doc["serialNumber"] == f"urn:uuid:{serial}"
    assert doc["metadata"]["timestamp"] == "2024-05-06T07:08:09Z"
    assert doc["metadata"]["component"]["name"] == "deps"
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(refs) == len(set(refs)) == 7


def test_empty_tree_and_application_type(tmp_path: Path) -> None:
    doc = sbom.build_sbom(
        tmp_path, name="fn", version="$LATEST", bom_ref="fn-arn", component_type="application"
    )
    _validate(doc)
    assert doc["components"] == []
    assert doc["serialNumber"].startswith("urn:uuid:")


def test_hostile_trees_are_skipped_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(outside, {"x.dist-info/METADATA": "Name: secret\nVersion: 1\n"})
    root = tmp_path / "root"
    (root / "node_modules" / "big").mkdir(parents=True)
    (root / "node_modules" / "big" / "package.json").write_text(" " * (2 << 20))
    (root / "link").symlink_to(outside)
    (root / "evil.dist-info").mkdir()
    (root / "evil.dist-info" / "METADATA").symlink_to(outside / "x.dist-info" / "METADATA")
    assert sbom.scan(root) == []
