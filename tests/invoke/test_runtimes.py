"""Node, provided (shell + curl), and AWS's own runtime clients running unmodified."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from support import ROOT, Deploy, call, wait_active

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
CACHE = ROOT / ".cache"


def _zip_dir(root: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo(rel + ("/" if path.is_dir() else ""))
            mode = path.lstat().st_mode
            info.external_attr = (mode & 0xFFFF) << 16
            if path.is_symlink():
                zf.writestr(info, os.readlink(path))
            elif path.is_dir():
                zf.writestr(info, b"")
            else:
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def _create(client: Any, name: str, data: bytes, runtime: str, handler: str) -> str:
    client.create_function(
        FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler, Code={"ZipFile": data}
    )
    wait_active(client, name)
    return name


# -- node ------------------------------------------------------------------------------------


NODE_APP = """
export const handler = async (event, context) => {
  console.log("node saw", JSON.stringify(event));
  return {
    event,
    functionName: context.functionName,
    memory: context.memoryLimitInMB,
    requestId: context.awsRequestId,
    remaining: context.getRemainingTimeInMillis(),
    node: process.versions.node,
    env: process.env.AWS_EXECUTION_ENV,
    trace: process.env._X_AMZN_TRACE_ID,
    helper: (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8')
      .includes('/var/runtime/_brazier_trace_env.node'),
  };
};
"""


def test_nodejs_handler(client: Any, deploy: Deploy) -> None:
    name = deploy({"index.mjs": NODE_APP}, runtime="nodejs20.x", handler="index.handler")
    out, body = call(client, name, {"n": 1}, LogType="Tail")
    assert "FunctionError" not in out, body
    assert body["event"] == {"n": 1}
    assert body["functionName"] == name
    assert body["memory"] == "128"
    assert body["node"].startswith("20.")
    assert body["env"] == "AWS_Lambda_nodejs20.x"
    assert body["trace"].startswith("Root=1-")
    # The native trace-id helper (scripts/build-native.sh) loads inside the sandbox: read-only
    # /var/runtime, seccomp, unprivileged user.
    assert body["helper"] is (ROOT / "src/brazier/_sandbox_init/_brazier_trace_env.node").exists()
    tail = base64.b64decode(out["LogResult"]).decode()
    assert f"\t{body['requestId']}\tINFO\tnode saw" in tail
    _, again = call(client, name, {"n": 2})
    assert again["trace"].startswith("Root=1-") and again["trace"] != body["trace"]


def test_nodejs_error_shape(client: Any, deploy: Deploy) -> None:
    app = "exports.handler = async () => { throw new TypeError('bad node'); };\n"
    name = deploy({"index.js": app}, runtime="nodejs20.x", handler="index.handler")
    out, body = call(client, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "TypeError"
    assert body["errorMessage"] == "bad node"
    assert isinstance(body["trace"], list)


# -- provided: a shell + curl bootstrap ---------------------------------------------------------

CURL_BOOTSTRAP = """#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  H=$(mktemp)
  EVENT=$(curl -sS -D "$H" "$API/invocation/next")
  ID=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$H" | tr -d '\\r' | cut -d' ' -f2)
  echo "shell got $EVENT"
  curl -sS -X POST "$API/invocation/$ID/response" -d "{\\"echo\\":$EVENT,\\"handler\\":\\"$_HANDLER\\"}" >/dev/null
done
"""


def test_provided_shell_curl_bootstrap(client: Any, deploy: Deploy) -> None:
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    name = deploy(
        {"bootstrap": CURL_BOOTSTRAP}, modes={"bootstrap": 0o755},
        runtime="provided.al2023", handler="my.handler",
    )  # fmt: skip
    out, body = call(client, name, {"k": "v"}, LogType="Tail")
    assert "FunctionError" not in out, body
    assert body == {"echo": {"k": "v"}, "handler": "my.handler"}
    assert 'shell got {"k": "v"}' in base64.b64decode(out["LogResult"]).decode()
    out, body = call(client, name, {"again": True})
    assert body["echo"] == {"again": True}


def test_provided_without_bootstrap(client: Any, deploy: Deploy) -> None:
    name = deploy({"handler.sh": "echo hi"}, runtime="provided.al2023", handler="x")
    out, body = call(client, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.InvalidEntrypoint"


# -- AWS's own runtime interface clients -----------------------------------------------------


def _site_packages_copy(dest: Path, *modules: str) -> None:
    import importlib.util

    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        origin = Path(spec.origin)
        src = origin.parent if origin.name == "__init__.py" else origin
        target = dest / src.name
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)


def test_awslambdaric_unmodified(client: Any, fname: str, tmp_path: Path) -> None:
    """``python -m awslambdaric app.handler`` from PyPI, as a provided.al2023 bootstrap."""
    task = tmp_path / "task"
    task.mkdir()
    _site_packages_copy(task, "awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py")
    (task / "app.py").write_text(
        "def handler(event, context):\n"
        "    print('ric saw', event)\n"
        "    return {'ric': True, 'fn': context.function_name, 'event': event}\n"
        "def broken(event, context):\n"
        "    raise RuntimeError('ric boom')\n"
    )
    boot = task / "bootstrap"
    boot.write_text(
        '#!/bin/sh\ncd "$LAMBDA_TASK_ROOT"\nexport PYTHONPATH=/var/task\n'
        'exec /usr/bin/python3 -m awslambdaric "$_HANDLER"\n'
    )
    boot.chmod(0o755)
    name = _create(client, fname, _zip_dir(task), "provided.al2023", "app.handler")
    out, body = call(client, name, {"a": 1}, LogType="Tail")
    assert "FunctionError" not in out, (body, base64.b64decode(out["LogResult"]).decode())
    assert body == {"ric": True, "fn": name, "event": {"a": 1}}
    assert "ric saw {'a': 1}" in base64.b64decode(out["LogResult"]).decode()
    client.update_function_configuration(FunctionName=name, Handler="app.broken")
    wait_active(client, name)
    out, body = call(client, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "RuntimeError"
    assert body["errorMessage"] == "ric boom"
    assert body["requestId"]


def _node_ric(cache: Path) -> Path:
    """``npm install aws-lambda-ric`` once (it compiles native code) into the repo's .cache."""
    target = cache / "node-ric"
    marker = target / "node_modules" / "aws-lambda-ric" / "package.json"
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    (target / "package.json").write_text('{"name": "ric-cache", "private": true}')
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "aws-lambda-ric@4.0.2"],
        cwd=target, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(
            f"npm install aws-lambda-ric failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return target


@pytest.mark.slow
def test_node_aws_lambda_ric_unmodified(client: Any, fname: str, tmp_path: Path) -> None:
    """Node's ``aws-lambda-ric`` from npm as a provided.al2023 bootstrap."""
    if not shutil.which("npm"):
        pytest.skip("npm is not installed")
    ric = _node_ric(CACHE)
    task = tmp_path / "task"
    shutil.copytree(ric / "node_modules", task / "node_modules", symlinks=True)
    (task / "index.mjs").write_text(
        "export const handler = async (event, context) => "
        "({ nodeRic: true, fn: context.functionName, event });\n"
    )
    boot = task / "bootstrap"
    boot.write_text(
        '#!/bin/sh\ncd "$LAMBDA_TASK_ROOT"\n'
        "exec /usr/bin/node node_modules/aws-lambda-ric/index.mjs\n"
    )
    boot.chmod(0o755)
    name = _create(client, fname, _zip_dir(task), "provided.al2023", "index.handler")
    out, body = call(client, name, {"z": 26}, LogType="Tail")
    assert "FunctionError" not in out, (body, base64.b64decode(out["LogResult"]).decode())
    assert body == {"nodeRic": True, "fn": name, "event": {"z": 26}}
