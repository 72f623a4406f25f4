"""Per-invoke cost of the python client.

Two numbers: the client's own Python work per no-op invoke (an in-memory socket replays canned
Runtime API answers, so no kernel or server time is counted), and the end-to-end hand-off against
the fake server (from our /next answer leaving to the result's request line arriving). Bounds are
generous: they catch order-of-magnitude regressions, the printed medians are the measurement.
"""

from __future__ import annotations

import statistics
import subprocess
import textwrap
from pathlib import Path

import pytest

from .conftest import PYTHONS, SANDBOX_INIT, RuntimeProcess, lambda_env
from .fake_runtime_api import FakeRuntimeAPI

IN_MEMORY = """
import sys, time
sys.path.insert(0, SANDBOX_INIT)
import python_runtime as pr

NEXT = (
    b"HTTP/1.1 200 OK\\r\\nContent-Length: 10\\r\\nContent-Type: application/json\\r\\n"
    b"Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\\r\\n"
    b"Lambda-Runtime-Deadline-Ms: 1999999999999\\r\\n"
    b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:fn\\r\\n"
    b"Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=1\\r\\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 GMT\\r\\n\\r\\n" b'{"k": "v"}'
)
ACK = b'HTTP/1.1 202 Accepted\\r\\nContent-Length: 15\\r\\n\\r\\n{"status":"OK"}'
N = 20000

class Done(BaseException):
    pass

class ReplaySocket:
    def __init__(self):
        self.n = 0
    def sendall(self, data):
        pass
    def recv(self, size):
        self.n += 1
        if self.n > 2 * N:
            raise Done
        return NEXT if self.n % 2 else ACK
    def recv_into(self, buf):
        data = self.recv(len(buf))
        buf[: len(data)] = data
        return len(data)
    def close(self):
        pass

samples = []
for _ in range(5):
    conn = pr._RuntimeConnection("127.0.0.1:9001")
    conn._sock = ReplaySocket()
    loop = pr._Loop(conn, lambda event, context: None, pr._StdoutSink(), False)
    t = time.perf_counter()
    try:
        loop.run()
    except Done:
        pass
    samples.append((time.perf_counter() - t) / N * 1e6)
print(sorted(samples)[2])
"""


@pytest.mark.parametrize("python", PYTHONS)
def test_in_memory_overhead_per_invoke(python):
    code = f"SANDBOX_INIT = {str(SANDBOX_INIT)!r}\n" + textwrap.dedent(IN_MEMORY)
    out = subprocess.run(
        [python, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    per_invoke_us = float(out.stdout.strip())
    print(f"\n{python}: python work per no-op invoke {per_invoke_us:.1f} us")
    assert per_invoke_us < 150


@pytest.mark.slow
def test_handoff_against_fake_server(tmp_path: Path):
    task = tmp_path / "task"
    task.mkdir()
    (task / "app.py").write_text("def handler(event, context):\n    return None\n")
    python = PYTHONS[-1].values[0]
    api = FakeRuntimeAPI()
    code = (
        f"import sys; sys.path.insert(0, {str(SANDBOX_INIT)!r}); import python_runtime; "
        f"sys.path.insert(0, {str(task)!r}); python_runtime.main('app.handler')"
    )
    proc = RuntimeProcess([python, "-c", code], task, lambda_env(api, task, "app.handler"))
    try:
        samples = []
        for i in range(2200):
            rid = api.push({"k": "v"}, request_id=f"r{i}")
            api.wait_post(rid)
            if i >= 200:  # warm-up
                samples.append(api.handoff_us(rid))
    finally:
        proc.kill()
        api.close()
    median = statistics.median(samples)
    print(f"\n{python}: /next answer -> result arrival, median {median:.1f} us")
    assert median < 5000
