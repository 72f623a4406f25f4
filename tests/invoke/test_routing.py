"""Invoking versions and aliases (weighted routing), and reserved concurrency at work."""

from __future__ import annotations

import base64
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from support import Deploy, call, lambda_client, make_zip, wait_active

APP = "import os\ndef handler(e, c):\n    return [os.environ['AWS_LAMBDA_FUNCTION_VERSION'], c.invoked_function_arn, V]\n"


def _two_versions(client: Any, deploy: Deploy) -> str:
    name = deploy({"app.py": "V = 'one'\n" + APP})
    client.publish_version(FunctionName=name)
    client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": "V = 'two'\n" + APP})
    )
    wait_active(client, name)
    client.publish_version(FunctionName=name)
    return name


def test_invoke_versions_and_aliases(client: Any, deploy: Deploy) -> None:
    name = _two_versions(client, deploy)
    out, body = call(client, name, {}, Qualifier="1")
    assert out["ExecutedVersion"] == "1"
    assert body[0] == "1" and body[2] == "one"
    assert body[1].endswith(f":function:{name}:1")
    out, body = call(client, name, {})
    assert out["ExecutedVersion"] == "$LATEST" and body[2] == "two"
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}:live"
    out, body = call(client, arn, {}, LogType="Tail")
    assert out["ExecutedVersion"] == "2"
    assert body[1] == arn  # the runtime sees the alias ARN it was invoked with
    assert body[0] == "2"  # and the concrete version in its environment
    assert "Version: 2\n" in base64.b64decode(out["LogResult"]).decode()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=name, Qualifier="nosuchalias")


def test_weighted_alias_splits_traffic(client: Any, deploy: Deploy) -> None:
    name = _two_versions(client, deploy)
    client.create_alias(
        FunctionName=name, Name="canary", FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
    )  # fmt: skip
    n = 2000
    seen: Counter[str] = Counter()
    for _ in range(n):
        out, body = call(client, name, {}, Qualifier="canary")
        assert out["ExecutedVersion"] == body[0]
        seen[out["ExecutedVersion"]] += 1
    share = seen["2"] / n
    assert abs(share - 0.3) < 0.04, seen  # ~4.5 standard deviations at n=2000
    assert seen["1"] + seen["2"] == n


def test_reserved_concurrency_zero_throttles_everything(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": "def handler(e, c):\n    return 1\n"})
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(client.exceptions.TooManyRequestsException) as exc:
        client.invoke(FunctionName=name, Payload=b"{}")
    assert exc.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    client.delete_function_concurrency(FunctionName=name)
    assert call(client, name, {})[1] == 1


def test_reserved_concurrency_limits_parallel_invokes(
    client: Any, deploy: Deploy, server: Any
) -> None:
    name = deploy({"app.py": "import time\ndef handler(e, c):\n    time.sleep(3)\n    return 1\n"})
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)

    # Clients made up front, a barrier and a 3 s handler: the three invokes overlap even on a
    # loaded machine (making a boto3 client in a thread, or one slow request, took over 1 s).
    clients = [lambda_client(server.url) for _ in range(3)]
    together = threading.Barrier(3)

    def one(mine: Any) -> str:
        together.wait()
        try:
            call(mine, name, {})
        except mine.exceptions.TooManyRequestsException as exc:
            return str(exc.response["Reason"])
        return "ok"

    with ThreadPoolExecutor(3) as pool:
        outcomes = sorted(pool.map(one, clients))
    assert outcomes == ["ReservedFunctionConcurrentInvocationLimitExceeded"] * 2 + ["ok"]
