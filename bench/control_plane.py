"""Control-plane latency: GetFunctionConfiguration and ListFunctions over keep-alive."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from bench.common import server, signed_headers, summarize, time_requests

ROLE = "arn:aws:iam::000000000000:role/bench"


def _ok(status: int, body: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"unexpected {status}: {body[:200]!r}")


def run(tmp: Path, *, quick: bool = False) -> dict[str, Any]:
    n = 1000 if quick else 3000
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support import HELLO_PY

    with server(tmp) as srv:
        client = boto3.client(
            "lambda", endpoint_url=srv.url, region_name="us-east-1",
            aws_access_key_id="AKIABENCHMARK", aws_secret_access_key="benchmark-secret",
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )  # fmt: skip
        for i in range(20):
            client.create_function(
                FunctionName=f"bench-{i:02d}", Runtime="python3.11", Role=ROLE,
                Handler="app.handler", Code={"ZipFile": HELLO_PY},
            )  # fmt: skip
        results: dict[str, Any] = {}
        for label, path in (
            ("get_function_configuration", "/2015-03-31/functions/bench-07/configuration"),
            ("list_functions", "/2015-03-31/functions?MaxItems=20"),
        ):
            headers = signed_headers("GET", srv.url + path)
            samples = time_requests(srv.port, "GET", path, headers=headers, n=n, check=_ok)
            results[label] = summarize(samples)
        # For reference: the same call through boto3, whose own client-side cost dominates.
        samples = []
        for i in range(300 + n // 3):
            t0 = time.perf_counter_ns()
            client.get_function_configuration(FunctionName="bench-07")
            if i >= 300:
                samples.append(time.perf_counter_ns() - t0)
        results["get_function_configuration_via_boto3"] = summarize(samples)
        return results
