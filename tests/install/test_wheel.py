"""The wheel, as pipx or ``uv tool install`` would take it: built with ``python -m build``,
installed into a fresh venv (dependencies resolved from pyproject's ranges), then run from there
with no source tree in sight: ``brazier --help``, ``brazier doctor``, and a server that creates
and invokes python and node functions, building its native helpers on first use."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import ROOT, call, free_port, lambda_client, make_zip, wait_active

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes need root")
ROLE = "arn:aws:iam::000000000000:role/any"


class Installed:
    """A fresh venv with the built wheel installed, and a cache dir of its own."""

    def __init__(self, base: Path, wheel: Path) -> None:
        self.base = base
        self.wheel = wheel
        self.venv = base / "venv"
        self.cache = base / "cache"
        self.brazier = self.venv / "bin" / "brazier"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        return {**env, "BRAZIER_CACHE_DIR": str(self.cache), "PYTHONUNBUFFERED": "1"}

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.brazier), *args],
            cwd=self.base,  # not the source tree: nothing of it may be imported
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    # sdist first, then the wheel from the sdist (build's default): both must carry the files.
    _run(sys.executable, "-m", "build", "--outdir", base / "dist", ROOT, cwd=base)
    wheels = list((base / "dist").glob("brazier-*.whl"))
    assert len(wheels) == 1, wheels
    inst = Installed(base, wheels[0])
    _run(sys.executable, "-m", "venv", inst.venv, cwd=base)
    # The dependencies at the lock's exact versions (what CI tests everywhere), then the wheel;
    # pip check: those versions satisfy the ranges the wheel declares.
    python = inst.venv / "bin" / "python"
    pip = (python, "-m", "pip", "install", "-q", "--disable-pip-version-check")
    for attempt in (1, 2):  # PyPI is reachable, but a request to it can fail once
        try:
            _run(*pip, "-r", ROOT / "requirements.lock", cwd=base)
            break
        except AssertionError:
            if attempt == 2:
                raise
    _run(*pip, "--no-deps", inst.wheel, cwd=base)
    _run(python, "-m", "pip", "check", cwd=base)
    return inst


def test_the_wheel_carries_the_sandbox_files_and_no_built_helper(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    init = "brazier/_sandbox_init/"
    for needed in ("zygote.py", "python_runtime.py", "node_runtime.mjs", "_brazier_child.py",
                   "brazier_init.c", "trace_env.c"):  # fmt: skip
        assert init + needed in names
    assert init + "_brazier_init" not in names  # built per machine, never shipped
    assert init + "_brazier_trace_env.node" not in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line for line in zipfile.ZipFile(installed.wheel).read(meta).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]  # fmt: skip
    assert requires and all(">=" in r for r in requires), requires  # ranges, not pins
    assert not any("awscli" in r or "mypy" in r for r in requires)


def test_the_installed_brazier_runs_from_its_own_venv(installed: Installed) -> None:
    where = _run(installed.venv / "bin" / "python", "-c", "import brazier; print(brazier.__file__)",
                 cwd=installed.base)  # fmt: skip
    assert Path(where.strip()).is_relative_to(installed.venv)
    proc = installed.run("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("server", "doctor", "runtimes", "keys", "invoke"):
        assert command in proc.stdout


@needs_root
def test_doctor_passes_in_the_installed_venv(installed: Installed) -> None:
    proc = installed.run("doctor", "--output", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    by_check = {f["check"]: f for f in report["findings"]}
    assert by_check["seccomp"]["level"] == "OK"  # libseccomp reached from the installed pyseccomp
    assert by_check["cgroups"]["level"] == "OK"
    if shutil.which("gcc"):
        assert by_check["native-init"]["level"] == "OK"


@pytest.fixture(scope="module")
def server(installed: Installed) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    port = free_port()
    log = (installed.base / "server.log").open("ab")
    proc = subprocess.Popen(
        [str(installed.brazier), "server", "--port", str(port), "--data-dir",
         str(installed.base / "data"), "--log-level", "info", "--prewarm-runtimes", "none"],
        cwd=installed.base, env=installed.env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (installed.base / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not become healthy"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_the_installed_server_runs_a_python_function(installed: Installed, server: str) -> None:
    client = lambda_client(server)
    code = "import sys\ndef handler(event, context):\n    return {'got': event, 'v': sys.version}\n"
    client.create_function(FunctionName="wheel-py", Runtime="python3.11", Role=ROLE,
                           Handler="app.handler", Code={"ZipFile": make_zip({"app.py": code})})  # fmt: skip
    wait_active(client, "wheel-py")
    out, payload = call(client, "wheel-py", {"n": 1})
    assert "FunctionError" not in out, payload
    assert payload["got"] == {"n": 1} and payload["v"].startswith("3.11")
    if shutil.which("gcc"):
        # The environments' PID 1 was built on first use, into the cache, from the wheel's C.
        built = list(installed.cache.glob("native/*/_brazier_init"))
        assert len(built) == 1 and os.access(built[0], os.X_OK)


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on this machine")
def test_the_installed_server_runs_a_node_function(installed: Installed, server: str) -> None:
    client = lambda_client(server)
    code = "exports.handler = async (event) => ({ got: event, trace: !!process.env._X_AMZN_TRACE_ID });\n"
    client.create_function(FunctionName="wheel-node", Runtime="nodejs20.x", Role=ROLE,
                           Handler="index.handler", Code={"ZipFile": make_zip({"index.js": code})})  # fmt: skip
    wait_active(client, "wheel-node")
    out, payload = call(client, "wheel-node", {"n": 2})
    assert "FunctionError" not in out, payload
    assert payload == {"got": {"n": 2}, "trace": True}
    if Path("/usr/include/node/node_api.h").is_file() and shutil.which("gcc"):
        assert list(installed.cache.glob("native/*/_brazier_trace_env.node"))
