"""`make run` on a fresh clone: the distribution packages before the venv, the run lock only (no
dev tool in the venv), then a server that answers; `make test` takes the dev set."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from support import ROOT, free_port

DEV_TOOLS = (
    "awscli",
    "mypy",
    "ruff",
    "pytest",
    "boto3",
    "import-linter",
    "uv",
    "build",
    "awslambdaric",
)


def dry_run(target: str) -> list[str]:
    """What make would run for ``target`` from nothing (-B: every target out of date)."""
    proc = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True, check=True
    )
    return proc.stdout.splitlines()


def index(lines: list[str], needle: str) -> int:
    return next(i for i, line in enumerate(lines) if needle in line)


def test_make_run_installs_the_run_set_only_and_packages_before_the_venv() -> None:
    lines = dry_run("run")
    text = "\n".join(lines)
    assert "system-deps.sh run" in text and "system-deps.sh dev" not in text
    assert "-r requirements.lock" in text and "requirements-dev.lock" not in text
    assert index(lines, "system-deps.sh run") < index(lines, "-m venv")
    assert index(lines, "-r requirements.lock") < index(lines, "--no-deps -e .")
    assert index(lines, "--no-deps -e .") < index(lines, "brazier server")


def test_make_test_adds_the_dev_set() -> None:
    text = "\n".join(dry_run("test"))
    assert "system-deps.sh dev" in text and "-r requirements-dev.lock" in text


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(os.geteuid() != 0, reason="make run installs packages and serves as root")
def test_make_run_on_a_fresh_clone_serves_without_dev_tools(tmp_path: Path) -> None:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    clone = tmp_path / "brazier"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", head], check=True)
    port = free_port()
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"DATA_DIR={tmp_path / 'data'}"],
            cwd=clone, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 400
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the server it started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    listed = subprocess.run(
        [str(clone / ".venv/bin/python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert {"starlette", "uvicorn", "botocore", "brazier"} <= names
    assert not names & set(DEV_TOOLS), names & set(DEV_TOOLS)
    assert (clone / ".venv/.installed-run").exists() and not (
        clone / ".venv/.installed-dev"
    ).exists()
