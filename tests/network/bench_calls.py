"""Function-to-function invoke through boto3 and the session credentials (decision 0029).

Run as root: ``.venv/bin/python tests/network/bench_calls.py [n]``. A warm caller invokes a warm
callee ``n`` times inside one handler (boto3 client made once), timing each call from inside;
then the test process invokes the same callee ``n`` times. The caller has 1,769 MB (one vCPU's
share, as on Lambda): at 128 MB its CPU share, not the path, dominates (p50 ~22-38 ms).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from network.test_calls import ROLE, _deploy

from support import call, lambda_client, make_zip, running_server, wait_active

LOOP = """
import json, time
import boto3
client = boto3.client("lambda")
def handler(event, context):
    out = []
    for i in range(event["n"]):
        t0 = time.perf_counter()
        client.invoke(FunctionName="callee", Payload=json.dumps({"x": i}))["Payload"].read()
        out.append((time.perf_counter() - t0) * 1000)
    return out
"""


def main(n: int) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp) / "data", args=("--egress", "internet")) as srv,
    ):
        client = lambda_client(srv.url)
        _deploy(client)
        layer = client.get_function(FunctionName="caller")["Configuration"]["Layers"][0]["Arn"]
        client.create_function(
            FunctionName="loop", Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": LOOP})}, Layers=[layer], Timeout=300, MemorySize=1769,
        )  # fmt: skip
        wait_active(client, "loop")
        call(client, "loop", {"n": 5})  # warm both
        _, ms = call(client, "loop", {"n": n})
        ms.sort()
        p50, p99 = statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"function->function invoke via boto3, n={n}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        host = []
        for i in range(n):
            t0 = time.perf_counter()
            call(client, "callee", {"x": i})
            host.append((time.perf_counter() - t0) * 1000)
        host.sort()
        p50, p99 = statistics.median(host), host[min(n - 1, int(n * 0.99))]
        print(
            f"host->function invoke via boto3 (same callee), n={n}: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
