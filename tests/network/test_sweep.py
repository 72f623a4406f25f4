"""A server killed with kill -9 leaves its table and veths; the next one sweeps them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from brazier.sandbox import open_sandbox_factory
from brazier.sandbox.network import NetworkConfig

from .conftest import brazier_links, needs_root, nft_table

pytestmark = [pytest.mark.sandbox, needs_root]

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from brazier.sandbox import open_sandbox_factory
    from brazier.sandbox.network import NetworkConfig
    async def main():
        async with open_sandbox_factory(pool_size=2, node_pool_size=0,
                                        network=NetworkConfig()) as f:
            await f.prewarm(["python3.11"])
            while f.statistics().pooled < 2:
                await asyncio.sleep(0.05)
            print("ready", flush=True)
            await asyncio.sleep(600)
    asyncio.run(main())
    """
)


def test_kill_9_leaves_nothing_after_the_next_start() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, cwd="/"
    )
    assert server.stdout is not None
    try:
        assert server.stdout.readline().strip() == "ready"
        assert f"brazier pid {server.pid}" in nft_table()
        assert any(n.startswith(f"bz{server.pid:x}.") for n in brazier_links())
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        server.stdout.close()
    assert f"brazier pid {server.pid}" in nft_table()  # left behind by the kill

    async def restart() -> tuple[str, list[str]]:
        async with open_sandbox_factory(pool_size=0, network=NetworkConfig()):
            return nft_table(), brazier_links()

    table, links = asyncio.run(restart())
    assert f"brazier pid {os.getpid()}" in table
    assert not [n for n in links if n.startswith(f"bz{server.pid:x}.")], links
    deadline = time.monotonic() + 5
    while brazier_links() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nft_table() == ""  # and the new server's own are gone at its stop
    assert brazier_links() == []
