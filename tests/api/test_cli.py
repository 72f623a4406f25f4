"""The command line: ``brazier version`` and the AWS CLI against brazier."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import brazier

from support import ROOT
from test_functions import create


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "brazier", "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"brazier {brazier.__version__}"


def _aws(server: Any, *args: str) -> Any:
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = subprocess.run(
        [aws, "lambda", *args, "--endpoint-url", server.url, "--output", "json"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    return out


def test_aws_cli_list_and_get(server: Any, client: Any, fname: str, tmp_path: Path) -> None:
    create(client, fname)
    out = _aws(server, "list-functions")
    assert out.returncode == 0, out.stderr
    assert fname in [f["FunctionName"] for f in json.loads(out.stdout)["Functions"]]
    out = _aws(server, "get-function-configuration", "--function-name", fname)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["FunctionName"] == fname
    out = _aws(server, "get-function", "--function-name", "nope-nope")
    assert out.returncode != 0
    assert "ResourceNotFoundException" in out.stderr
    zip_path = tmp_path / "f.zip"
    from support import HELLO_PY

    zip_path.write_bytes(HELLO_PY)
    out = _aws(
        server, "create-function", "--function-name", f"{fname}-cli", "--runtime", "python3.12",
        "--role", "arn:aws:iam::000000000000:role/r", "--handler", "app.handler",
        "--zip-file", f"fileb://{zip_path}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["State"] == "Pending"
    out = _aws(server, "delete-function", "--function-name", f"{fname}-cli")
    assert out.returncode == 0, out.stderr
