"""Helpers for the start/stop and configuration tests: ``brazier`` as a real process, with a
chosen environment, optionally as a non-root user or as a terminal's foreground job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from support import ROOT, free_port

NOBODY = 65534
# The venv's interpreter lives under /root (mode 0700 here): a non-root user runs the system
# Python 3.11 with the venv's packages and brazier's source on its path instead.
SYSTEM_PYTHON = Path("/usr/bin/python3.11")
_SITE = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    / "site-packages"
)


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any BRAZIER_* or AWS_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAZIER_", "AWS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    # No system-wide config file on the machine may leak into a test.
    env["BRAZIER_CONFIG"] = ""
    env.update(extra)
    return env


def _pdeathsig() -> None:
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_brazier(
    *args: str, env: Mapping[str, str], timeout: float = 60, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brazier", *args], env=dict(env), cwd=cwd,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def brazier_as_nobody(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``brazier ARGS`` run by uid/gid 65534 (skips the test where that cannot be done)."""
    if os.geteuid() != 0 or not SYSTEM_PYTHON.exists():
        pytest.skip("needs root and /usr/bin/python3.11 to run brazier as another user")

    def drop() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    full = {**env, "PYTHONPATH": f"{ROOT / 'src'}:{_SITE}"}
    return subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "brazier", *args], env=full, cwd="/",
        capture_output=True, text=True, timeout=timeout, check=False,
        preexec_fn=drop,
    )  # fmt: skip


class Job:
    """``brazier server ARGS`` as a terminal's foreground job: its own process group (as a shell
    gives each job), so a test can send SIGINT to the whole group as Ctrl-C does."""

    def __init__(
        self, args: tuple[str, ...], env: Mapping[str, str], log: Path, *, port: bool = True
    ) -> None:
        """``port``: pass ``--port`` (a free one); False leaves the port to env/file/default."""
        self.log = log
        self.port = free_port()
        port_args = ("--port", str(self.port)) if port else ()
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "brazier", "server", *port_args, *args],
                env=dict(env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_pdeathsig,  # noqa: PLW1509
            )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 30) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(f"server did not become healthy: {self.output()}")

    def ctrl_c(self) -> None:
        """SIGINT to the job's whole process group, as a terminal sends it."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
