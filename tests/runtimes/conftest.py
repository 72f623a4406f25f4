"""Fixtures for the in-sandbox runtime clients: a fake Runtime API and client launchers."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .fake_runtime_api import FakeRuntimeAPI

SANDBOX_INIT = Path(__file__).resolve().parents[2] / "src" / "brazier" / "_sandbox_init"


def _python_interpreters() -> list[Any]:
    found: dict[str, str] = {}
    for minor in range(9, 14):
        hits = sorted(glob.glob(f"/root/.pyenv/versions/3.{minor}*/bin/python3.{minor}"))
        if hits:
            found[f"3.{minor}"] = hits[-1]
    if not found:
        found[f"{sys.version_info[0]}.{sys.version_info[1]}"] = sys.executable
    return [pytest.param(exe, id=f"py{ver}") for ver, exe in found.items()]


PYTHONS = _python_interpreters()


def run_snippet(python: str, code: str) -> str:
    """Run ``code`` on ``python`` (isolated, with the in-sandbox modules importable); its stdout."""
    script = f"import sys\nsys.path.insert(0, {str(SANDBOX_INIT)!r})\n" + textwrap.dedent(code)
    argv = [python, "-I", "-S", "-B", "-c", script]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


NODE = shutil.which("node")


def lambda_env(api: FakeRuntimeAPI, task: Path, handler: str, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(task),
        "LAMBDA_RUNTIME_DIR": str(SANDBOX_INIT),
    }
    env.update(extra)
    return env


class RuntimeProcess:
    """A runtime client subprocess whose stdout is collected by a reader thread."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._out = bytearray()
        self._err = bytearray()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Any, into: bytearray) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            into.extend(chunk)

    @property
    def stdout(self) -> str:
        return self._out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self._err.decode("utf-8", "replace")

    def wait_output(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.stdout:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in stdout:\n{self.stdout}\n{self.stderr}")
            time.sleep(0.01)
        return self.stdout

    def wait_exit(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for t in self._threads:
            t.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def api() -> Iterator[FakeRuntimeAPI]:
    server = FakeRuntimeAPI()
    yield server
    server.close()


@pytest.fixture
def task(tmp_path: Path) -> Path:
    d = tmp_path / "task"
    d.mkdir()
    return d


@pytest.fixture
def spawned() -> Iterator[list[RuntimeProcess]]:
    procs: list[RuntimeProcess] = []
    yield procs
    for p in procs:
        p.kill()
