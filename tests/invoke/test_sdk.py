"""The AWS SDKs as Lambda provides them (issue 12, item 4): after ``brazier runtimes install sdk``
a function imports boto3 / ``@aws-sdk/client-*`` without bundling it, what the function bundles
wins, and nothing of the SDK is writable from a sandbox. Also: a nodejs20.x and a nodejs22.x
function side by side, each on its own node."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import ROOT, call, lambda_client, make_zip, running_server, wait_active

ROLE = "arn:aws:iam::000000000000:role/lambda-role"

PY_SDK = """\
import sys

import boto3, botocore


def handler(event, context):
    return {
        "boto3": boto3.__version__, "botocore": botocore.__version__, "file": boto3.__file__,
        "path": sys.path,
    }
"""

PY_WRITE = """\
import sys


def handler(event, context):
    if any(m.split(".")[0] in ("boto3", "botocore") for m in sys.modules):
        return {"errno": -1}  # the zygote or the runtime imported the SDK: it must not
    try:
        open("/var/runtime/sdk/python/boto3/x.py", "w").write("pwned")
    except OSError as e:
        return {"errno": e.errno}
    return {"errno": 0}
"""

NODE_ESM = """\
import { LambdaClient, ListFunctionsCommand } from "@aws-sdk/client-lambda";
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
export const handler = async () => ({
  client: typeof LambdaClient, command: typeof ListFunctionsCommand,
  resolved: require.resolve("@aws-sdk/client-lambda"),
});
"""

NODE_CJS = """\
const { STSClient } = require("@aws-sdk/client-sts");
exports.handler = async () => ({ client: typeof STSClient, resolved: require.resolve("@aws-sdk/client-sts") });
"""

NODE_VERSION = "export const handler = async () => ({ node: process.version });\n"


def brazier(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brazier", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False, env=env,
    )  # fmt: skip


def registry(data_dir: Path) -> dict[str, dict[str, Any]]:
    out = brazier("runtimes", "--data-dir", str(data_dir), "--output", "json")
    assert out.returncode == 0, out.stderr
    return {row["runtime"]: row for row in json.loads(out.stdout)}


def _outside_tmp() -> Path:
    """A data dir outside /tmp: sandboxes mount their own /tmp over the host's."""
    return Path(tempfile.mkdtemp(prefix="brazier-sdk-", dir="/var/tmp")) / "data"


@pytest.fixture(scope="module")
def sdk_data() -> Iterator[Path]:
    """One data dir with the SDK installed (npm and pip: ~15 s) and nodejs22.x, for the module."""
    data = _outside_tmp()
    try:
        done = brazier("runtimes", "install", "sdk", "--data-dir", str(data))
        assert done.returncode == 0, done.stderr
        if registry(data)["nodejs22.x"]["status"] == "missing":
            done = brazier("runtimes", "install", "nodejs22.x", "--data-dir", str(data))
            assert done.returncode == 0, done.stderr
        yield data
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def sdk_client(sdk_data: Path) -> Iterator[Any]:
    with running_server(sdk_data) as srv:
        yield lambda_client(srv.url)


def deploy(client: Any, name: str, files: dict[str, str], runtime: str, handler: str) -> str:
    client.create_function(
        FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
        Code={"ZipFile": make_zip(files)},
    )  # fmt: skip
    assert wait_active(client, name, timeout=30)["State"] == "Active"
    return name


def test_install_records_versions_and_seals_the_tree(sdk_data: Path) -> None:
    from importlib.metadata import version

    row = registry(sdk_data)["sdk"]
    assert row["status"] == "available" and row["source"] == "brazier", row
    prefix = sdk_data / "runtimes" / "sdk"
    assert Path(row["path"]) == prefix
    versions = json.loads((prefix / "versions.json").read_text())
    assert versions["boto3"] == versions["botocore"] == version("botocore")  # brazier's own
    assert {f"@aws-sdk/client-{c}" for c in ("lambda", "s3", "sqs", "sns", "dynamodb",
            "eventbridge", "secrets-manager", "sts")} <= set(versions)  # fmt: skip
    assert row["version"] == f"boto3 {versions['boto3']}, js {versions['@aws-sdk/client-lambda']}"
    for dirpath, dirnames, filenames in os.walk(prefix):  # nothing a sandbox uid can write
        for n in (*dirnames, *filenames):
            st = (Path(dirpath) / n).lstat()
            assert stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o022, Path(dirpath) / n
            assert st.st_uid == os.getuid()
    assert not [p for p in prefix.parent.iterdir() if p.name.startswith(".sdk")]


def test_python_function_imports_boto3_without_bundling_it(sdk_client: Any, sdk_data: Path) -> None:
    versions = json.loads((sdk_data / "runtimes" / "sdk" / "versions.json").read_text())
    name = deploy(sdk_client, "py-sdk", {"app.py": PY_SDK}, "python3.11", "app.handler")
    out, body = call(sdk_client, name, {})
    assert out["StatusCode"] == 200 and "FunctionError" not in out, body
    assert body["boto3"] == versions["boto3"] and body["botocore"] == versions["botocore"]
    assert body["file"] == "/var/runtime/sdk/python/boto3/__init__.py"
    path = body["path"]  # as Lambda's: the function's code and layers first, the SDK after
    assert path.index("/var/task") < path.index("/opt/python") < path.index("/var/runtime")
    assert path.index("/var/runtime") < path.index("/var/runtime/sdk/python")


def test_a_bundled_boto3_wins(sdk_client: Any) -> None:
    files = {
        "boto3/__init__.py": "__version__ = '0.0.bundled'\n",
        "app.py": "import boto3\n\ndef handler(e, c):\n    return [boto3.__version__, boto3.__file__]\n",
    }
    name = deploy(sdk_client, "py-bundled", files, "python3.11", "app.handler")
    out, body = call(sdk_client, name, {})
    assert out["StatusCode"] == 200 and "FunctionError" not in out, body
    assert body == ["0.0.bundled", "/var/task/boto3/__init__.py"]


def test_a_bundled_js_client_wins(sdk_client: Any) -> None:
    pkg = "node_modules/@aws-sdk/client-lambda"
    files = {
        f"{pkg}/package.json": '{"name": "@aws-sdk/client-lambda", "main": "index.js"}',
        f"{pkg}/index.js": "exports.LambdaClient = 'bundled';\n",
        "index.mjs": 'import { LambdaClient } from "@aws-sdk/client-lambda";\n'
        "export const handler = async () => LambdaClient;\n",
    }
    name = deploy(sdk_client, "node-bundled", files, "nodejs20.x", "index.handler")
    out, body = call(sdk_client, name, {})
    assert out["StatusCode"] == 200 and "FunctionError" not in out, body
    assert body == "bundled"


def test_the_sdk_is_read_only_in_the_sandbox(sdk_client: Any) -> None:
    name = deploy(sdk_client, "py-write", {"app.py": PY_WRITE}, "python3.11", "app.handler")
    out, body = call(sdk_client, name, {})
    assert out["StatusCode"] == 200 and "FunctionError" not in out, body
    assert body["errno"] == 30  # EROFS


def test_node_functions_import_the_js_sdk_without_bundling_it(sdk_client: Any) -> None:
    esm = deploy(sdk_client, "node-esm", {"index.mjs": NODE_ESM}, "nodejs20.x", "index.handler")
    out, body = call(sdk_client, esm, {})
    assert out["StatusCode"] == 200 and "FunctionError" not in out, body
    assert body["client"] == body["command"] == "function"
    assert body["resolved"].startswith("/var/runtime/sdk/nodejs/node_modules/@aws-sdk/")
    cjs = deploy(sdk_client, "node-cjs", {"index.js": NODE_CJS}, "nodejs22.x", "index.handler")
    out, body = call(sdk_client, cjs, {})
    assert out["StatusCode"] == 200 and "FunctionError" not in out, body
    assert body["client"] == "function"
    assert body["resolved"].startswith("/var/runtime/sdk/nodejs/node_modules/@aws-sdk/")


def test_nodejs20_and_nodejs22_side_by_side(sdk_client: Any) -> None:
    files = {"index.mjs": NODE_VERSION}
    names = {
        major: deploy(sdk_client, f"node{major}", files, f"nodejs{major}.x", "index.handler")
        for major in (20, 22)
    }
    for _ in range(2):  # interleaved, each warm environment on its own node
        for major, name in names.items():
            out, body = call(sdk_client, name, {})
            assert out["StatusCode"] == 200 and "FunctionError" not in out, body
            assert body["node"].startswith(f"v{major}."), (major, body)


def test_without_the_sdk_functions_do_not_find_it() -> None:
    data = _outside_tmp()
    try:
        row = registry(data)["sdk"]
        assert row["status"] == "missing" and "brazier runtimes install sdk" in row["detail"]
        with running_server(data) as srv:
            client = lambda_client(srv.url)
            py = deploy(client, "py-none", {"app.py": PY_SDK}, "python3.11", "app.handler")
            out, body = call(client, py, {})
            assert out.get("FunctionError") == "Unhandled", body
            assert body["errorType"] == "Runtime.ImportModuleError", body
            assert "No module named 'boto3'" in body["errorMessage"]
            files = {"index.mjs": NODE_ESM}
            node = deploy(client, "node-none", files, "nodejs20.x", "index.handler")
            out, body = call(client, node, {})
            assert out.get("FunctionError") == "Unhandled", body
            assert "@aws-sdk/client-lambda" in body["errorMessage"]
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)


def test_a_failed_install_leaves_nothing(tmp_path: Path) -> None:
    data = _outside_tmp()
    npm = tmp_path / "bin" / "npm"  # an npm that fails as an unreachable registry would
    npm.parent.mkdir()
    npm.write_text("#!/bin/sh\necho 'npm error code E404' >&2\nexit 1\n")
    npm.chmod(0o755)
    env = {**os.environ, "PATH": f"{npm.parent}:{os.environ.get('PATH', '')}"}
    try:
        out = brazier("runtimes", "install", "sdk", "--data-dir", str(data), env=env)
        assert out.returncode == 1
        assert "npm install @aws-sdk/*@" in out.stderr and "npm error code E404" in out.stderr
        assert os.listdir(data / "runtimes") == []
        assert registry(data)["sdk"]["status"] == "missing"
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)
