"""Provisioned concurrency: environments initialised ahead, used first, reported READY."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from support import Deploy, call, lambda_client

APP = (
    "import os, time\n"
    "def handler(e, c):\n"
    "    time.sleep(e.get('s', 0))\n"
    "    return os.environ['AWS_LAMBDA_INITIALIZATION_TYPE']\n"
)


def _ready(client: Any, name: str, qualifier: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cfg = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if cfg["Status"] == "READY":
            return dict(cfg)
        time.sleep(0.05)
    raise AssertionError(f"provisioned concurrency never became READY: {cfg}")


def test_provisioned_environments_serve_first(client: Any, deploy: Deploy, server: Any) -> None:
    name = deploy({"app.py": APP})
    client.publish_version(FunctionName=name)
    put = client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
    )
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] == "IN_PROGRESS"
    ready = _ready(client, name, "1")
    assert ready["AvailableProvisionedConcurrentExecutions"] == 2
    assert ready["AllocatedProvisionedConcurrentExecutions"] == 2
    out, body = call(client, name, {}, Qualifier="1", LogType="Tail")
    assert body == "provisioned-concurrency"
    assert "Init Duration" not in base64.b64decode(out["LogResult"]).decode()
    # Three at once: two provisioned environments, one on-demand beside them.
    with ThreadPoolExecutor(3) as pool:
        kinds = sorted(pool.map(
            lambda _: call(lambda_client(server.url), name, {"s": 1}, Qualifier="1")[1], range(3)
        ))  # fmt: skip
    assert kinds == ["on-demand", "provisioned-concurrency", "provisioned-concurrency"]
    listed = client.list_provisioned_concurrency_configs(FunctionName=name)
    items = listed["ProvisionedConcurrencyConfigs"]
    assert [i["FunctionArn"].rsplit(":", 1)[1] for i in items] == ["1"]
    client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")


def test_provisioned_on_alias_and_errors(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": APP})
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert "cannot be applied to unpublished function versions" in str(exc.value)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="7", ProvisionedConcurrentExecutions=1
        )
    client.publish_version(FunctionName=name)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    _ready(client, name, "live")
    out, body = call(client, name, {}, Qualifier="live", LogType="Tail")
    assert body == "provisioned-concurrency"
    assert out["ExecutedVersion"] == "1"
