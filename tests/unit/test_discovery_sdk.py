"""The registry's SDK row: which runtimes dir's ``sdk`` sandboxes bind, and what it reports."""

from __future__ import annotations

import json
from pathlib import Path

from brazier.sandbox.discovery import Discovery, sdk_prefix


def _sdk(runtimes: Path, versions: object) -> Path:
    prefix = sdk_prefix(runtimes)
    prefix.mkdir(parents=True)
    (prefix / "versions.json").write_text(json.dumps(versions))
    return prefix


def test_missing_without_versions_json(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    (sdk_prefix(first) / "python").mkdir(parents=True)  # a staging leftover is no SDK
    found = Discovery((), bin_dirs=(), managed=(first, second))
    assert found.sdk() is None
    row = found.sdk_status()
    assert (row.runtime, row.status, row.path) == ("sdk", "missing", None)
    assert str(sdk_prefix(second)) in row.detail
    assert row.detail.endswith("Install it with: brazier runtimes install sdk")


def test_first_runtimes_dir_with_an_sdk_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    versions = {"boto3": "1.44.8", "@aws-sdk/client-lambda": "3.1178.0"}
    later = _sdk(second, versions)
    found = Discovery((), bin_dirs=(), managed=(first, second))
    assert found.sdk() == later
    assert found.sdk_status().version == "boto3 1.44.8, js 3.1178.0"
    earlier = _sdk(first, versions)  # seen at once: the SDK is looked for each time
    assert found.sdk() == earlier and found.sdk_status().source == "brazier"


def test_unreadable_versions_still_available(tmp_path: Path) -> None:
    _sdk(tmp_path, ["not", "a", "mapping"])
    row = Discovery((), bin_dirs=(), managed=(tmp_path,)).sdk_status()
    assert row.available and row.version is None
