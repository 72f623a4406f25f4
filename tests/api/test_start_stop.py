"""``brazier server`` starts and stops like a service: one line per start-up failure, a lock on
the data dir, Ctrl-C (SIGINT to the whole process group, as a terminal sends it) drains the
in-flight invocations, then ends the rest with a platform error, and exits 0 without tracebacks.
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest
from service_support import Job, brazier_as_nobody, clean_env, run_brazier

from support import free_port, make_zip, wait_active

pytestmark = pytest.mark.sandbox

SLEEPER = make_zip({
    "app.py": "import time\n"
              "def handler(event, context):\n"
              "    print('started', flush=True)\n"
              "    time.sleep(event['s'])\n"
              "    return {'slept': event['s']}\n",
})  # fmt: skip


def _one_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for word in ("Traceback", "ExceptionGroup", "listening", "runtimes ready"):
        assert word not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_busy_port_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_brazier(
            "server", "--port", str(port), "--data-dir", str(tmp_path / "d"),
            "--prewarm-runtimes", "python3.12", env=clean_env(),
        )  # fmt: skip
    assert out.returncode == 1
    assert out.stdout == ""
    _one_line(out.stderr, f"127.0.0.1:{port}", "in use", "--port")


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    first = Job(("--data-dir", str(data), "--prewarm-runtimes", "none"), clean_env(),
                tmp_path / "first.log").wait_healthy()  # fmt: skip
    try:
        out = run_brazier(
            "server", "--port", str(free_port()), "--data-dir", str(data),
            "--prewarm-runtimes", "none", env=clean_env(),
        )  # fmt: skip
        assert out.returncode == 1
        _one_line(out.stderr, "another brazier server", f"pid {first.proc.pid}", str(data))
        assert first.proc.poll() is None
    finally:
        first.ctrl_c()
        assert first.wait() == 0
    # The lock goes with the process: the data dir is free again.
    again = Job(("--data-dir", str(data), "--prewarm-runtimes", "none"), clean_env(),
                tmp_path / "again.log").wait_healthy()  # fmt: skip
    again.ctrl_c()
    assert again.wait() == 0


def test_not_root_is_one_line_with_the_fix() -> None:
    out = brazier_as_nobody(
        "server", "--port", str(free_port()), "--data-dir", "/nonexistent/brazier",
        env=clean_env(HOME="/"),
    )  # fmt: skip
    assert out.returncode == 1
    _one_line(out.stderr, "root", "sudo")


def test_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = run_brazier(
        "server", "--port", str(free_port()), "--data-dir", str(blocker / "d"), env=clean_env()
    )
    assert out.returncode == 1
    _one_line(out.stderr, str(blocker / "d"), "--data-dir")


def _serve_sleeper(tmp_path: Path, *args: str) -> tuple[Job, Any]:
    job = Job(("--data-dir", str(tmp_path / "d"), "--prewarm-runtimes", "python3.12", *args),
              clean_env(), tmp_path / "server.log").wait_healthy()  # fmt: skip
    # One attempt in all: SDKs retry a 500, and the retry would find the port closed.
    client = boto3.client(
        "lambda", endpoint_url=job.url, region_name="us-east-1", aws_access_key_id="AKIA0",
        aws_secret_access_key="s",
        config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=60),
    )  # fmt: skip
    client.create_function(
        FunctionName="sleeper", Runtime="python3.12", Handler="app.handler",
        Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": SLEEPER}, Timeout=60,
    )  # fmt: skip
    wait_active(client, "sleeper")
    client.invoke(FunctionName="sleeper", Payload=b'{"s": 0}')  # warm: the next one is quick
    return job, client


def _invoke_in_background(client: Any, seconds: float) -> concurrent.futures.Future[Any]:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    started = time.monotonic()

    def invoke() -> Any:
        return client.invoke(FunctionName="sleeper", Payload=f'{{"s": {seconds}}}'.encode())

    fut = pool.submit(invoke)
    pool.shutdown(wait=False)
    time.sleep(0.5)  # the request is in the server, the function sleeping
    assert not fut.done() and time.monotonic() - started < seconds
    return fut


def _clean_exit_log(job: Job) -> str:
    log = job.output()
    for word in ("Traceback", "KeyboardInterrupt", "ExceptionGroup", "Runtime.ExitError"):
        assert word not in log, log
    tail = log.split("shutting down", 1)[1]
    assert "runtimes ready" not in tail, log
    assert "listening" in log.split("shutting down", 1)[0]
    return log


def test_ctrl_c_lets_the_in_flight_invoke_finish_and_exits_0(tmp_path: Path) -> None:
    job, client = _serve_sleeper(tmp_path)
    try:
        fut = _invoke_in_background(client, 2)
        job.ctrl_c()
        reply = fut.result(timeout=30)
        assert "FunctionError" not in reply, reply
        assert reply["Payload"].read() == b'{"slept": 2}'
        assert job.wait(30) == 0
        _clean_exit_log(job)
    finally:
        job.kill()


def test_ctrl_c_past_the_grace_ends_the_invoke_with_a_platform_error(tmp_path: Path) -> None:
    job, client = _serve_sleeper(tmp_path, "--shutdown-grace", "1")
    try:
        fut = _invoke_in_background(client, 30)
        stopped = time.monotonic()
        job.ctrl_c()
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            fut.result(timeout=30)
        took = time.monotonic() - stopped
        error = caught.value.response["Error"]
        assert error["Code"] == "ServiceException"
        assert "shutting down" in error["Message"] and "grace" in error["Message"]
        assert took < 10, took
        assert job.wait(30) == 0
        log = _clean_exit_log(job)
        assert "ended past the shutdown grace period" in log
    finally:
        job.kill()


def test_a_corrupt_data_dir_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "metadata.db").write_bytes(b"not sqlite at all " * 512)
    out = run_brazier(
        "server", "--port", str(free_port()), "--data-dir", str(data), env=clean_env()
    )
    assert out.returncode == 1
    _one_line(out.stderr, str(data), "not a database")


def test_ctrl_c_while_runtimes_start_says_nothing_after_shutting_down(tmp_path: Path) -> None:
    job = Job(("--data-dir", str(tmp_path / "d"), "--prewarm-runtimes", "all"), clean_env(),
              tmp_path / "server.log").wait_healthy()  # fmt: skip
    try:
        job.ctrl_c()  # the zygotes of every runtime are still starting
        assert job.wait(30) == 0
        log = job.output()
        for word in ("Traceback", "KeyboardInterrupt", "ExceptionGroup", "Error"):
            assert word not in log, log
        assert "runtimes ready" not in log.split("shutting down", 1)[1], log
    finally:
        job.kill()
