"""A pre-started node environment (its runtime already running in the pool, decision 0004) gets
its network in the pool too, and its function's policy at start."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from brazier.model.egress import EGRESS_NONE, EgressPolicy
from brazier.sandbox import LinuxSandboxFactory, SandboxSpec, open_sandbox_factory
from brazier.sandbox.network import NetworkConfig
from sandbox.test_prestart import make_dirs, node_env, serve_one, wait_pooled

from .conftest import Internet, needs_root

pytestmark = [
    pytest.mark.sandbox,
    needs_root,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]

FETCH = """
const http = require('node:http');
exports.handler = (event) => new Promise((resolve) => {
  const req = http.get(event.url, { timeout: 3000 }, (res) => {
    let body = '';
    res.on('data', (c) => { body += c; });
    res.on('end', () => resolve({ body }));
  });
  req.on('error', (e) => resolve({ error: e.code }));
  req.on('timeout', () => { req.destroy(); resolve({ error: 'timeout' }); });
});
"""


def test_prestarted_node_reaches_the_test_internet(tmp_path: Path, internet: Internet) -> None:
    task, opt = make_dirs(tmp_path, FETCH)
    url = f"http://{internet.address}/"

    async def one(f: LinuxSandboxFactory, egress: EgressPolicy | None) -> tuple[bool, Any]:
        await wait_pooled(f)
        spec = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="index.handler",
                           env=node_env(), layer_dir=opt, egress=egress)  # fmt: skip
        sbx = await f.start(spec)
        _, body = await serve_one(sbx, {"url": url})
        await sbx.kill()
        return sbx.prestarted, body

    async def main() -> list[tuple[bool, Any]]:
        config = NetworkConfig(upstream_dns=internet.address)
        async with open_sandbox_factory(pool_size=0, node_pool_size=1, network=config) as f:
            assert await f.prewarm(["nodejs20.x"]) == ["nodejs20.x"]
            return [await one(f, None), await one(f, EGRESS_NONE)]

    (pre1, allowed), (pre2, denied) = asyncio.run(main())
    assert pre1 and pre2
    assert allowed == {"body": "hello from the test internet"}, allowed
    assert denied == {"error": "ECONNREFUSED"}, denied
