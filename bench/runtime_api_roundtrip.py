"""Micro-benchmark: ``session.invoke()`` -> parked ``/next`` -> ``/response`` -> result.

The runtime is a minimal keep-alive ``http.client`` loop in a subprocess (no handler work), so
the figure is the platform's share of a warm invoke plus one client round trip.

    .venv/bin/python bench/runtime_api_roundtrip.py [--n 5000] [--loop asyncio|uvloop]
                                                    [--payload 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from brazier.runtime_api import FunctionResponse, Invocation, open_runtime_session

RUNTIME = r"""
import http.client, os, sys
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
base = "/2018-06-01/runtime/invocation/"
while True:
    conn.request("GET", base + "next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    conn.request("POST", base + rid + "/response", body=body,
                 headers={"Content-Type": "application/json"})
    conn.getresponse().read()
"""


async def main(n: int, payload_size: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    payload = b'{"p":"' + b"x" * max(0, payload_size - 8) + b'"}'
    async with open_runtime_session(listener) as session:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            RUNTIME,
            env={**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"},
        )
        try:
            await asyncio.wait_for(session.wait_init(), 10)
            arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
            samples: list[float] = []
            warmup = min(500, n // 5)
            for i in range(n + warmup):
                inv = Invocation(f"req-{i}", payload, 1_900_000_000_000, arn)
                t0 = time.perf_counter()
                result = await session.invoke(inv)
                t1 = time.perf_counter()
                await session.wait_idle()
                assert isinstance(result, FunctionResponse)
                assert result.body == payload
                if i >= warmup:
                    samples.append((t1 - t0) * 1e6)
            samples.sort()
            p99 = samples[int(len(samples) * 0.99) - 1]
            print(
                f"loop={type(asyncio.get_running_loop()).__module__} n={n} "
                f"payload={len(payload)}B  median={statistics.median(samples):.1f}us  "
                f"p99={p99:.1f}us  min={samples[0]:.1f}us"
            )
            print(session.statistics())
        finally:
            proc.kill()
            await proc.wait()
    listener.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.n, args.payload))
    else:
        asyncio.run(main(args.n, args.payload))
