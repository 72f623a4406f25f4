"""Time ``brazier server`` from exec to a healthy /health, from SIGINT to exit (idle), and one
``brazier invoke`` CLI call end to end. Usage (root, from the repo):

    .venv/bin/python scripts/measure-start-stop.py [N]

Prints median and max (the p99 of so few runs) in milliseconds, as JSON.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import boto3
import httpx

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAZIER_", "AWS_"))}
    env["BRAZIER_CONFIG"] = ""
    return env


def _start(data: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    port = _port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "brazier", "server", "--port", str(port), "--data-dir", str(data),
         "--prewarm-runtimes", "none", "--log-level", "warning"],
        env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url, time.perf_counter() - t0
        except httpx.HTTPError:
            time.sleep(0.005)


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(xs) * 1000, 1), "max_ms": round(max(xs) * 1000, 1)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    starts, stops = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            proc, _, took = _start(Path(tmp) / f"d{i}")
            starts.append(took)
            t0 = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
            stops.append(time.perf_counter() - t0)
        proc, url, _ = _start(Path(tmp) / "cli")
        try:
            client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id="a", aws_secret_access_key="b")  # noqa: S106  # fmt: skip
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                z.writestr("app.py", "def handler(e, c):\n    return e\n")
            client.create_function(
                FunctionName="m", Runtime="python3.12", Handler="app.handler",
                Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": buf.getvalue()},
            )  # fmt: skip
            client.get_waiter("function_active_v2").wait(FunctionName="m")
            cli = []
            env = {**_env(), "AWS_ENDPOINT_URL_LAMBDA": url, "BRAZIER_ENDPOINT": url}
            for _ in range(n):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "brazier", "invoke", "m", "{}"], env=env,
                               cwd=ROOT, check=True, capture_output=True)  # fmt: skip
                cli.append(time.perf_counter() - t0)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    out = {"runs": n, "start_to_healthy": _stats(starts), "sigint_to_exit": _stats(stops),
           "cli_invoke": _stats(cli)}  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
