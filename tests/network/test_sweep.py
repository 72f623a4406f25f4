"""A server killed with kill -9 leaves its table and veths; the next one sweeps them."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from brazier.sandbox import open_sandbox_factory
from brazier.sandbox.base import SandboxSpec
from brazier.sandbox.network import NetworkConfig

from .conftest import Internet, brazier_links, code_dir, needs_root, nft_table

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
        assert f"brazier pid {server.pid}" in nft_table(server.pid)
        assert any(n.startswith(f"bz{server.pid:x}.") for n in brazier_links())
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        server.stdout.close()
    assert f"brazier pid {server.pid}" in nft_table(server.pid)  # left behind by the kill

    async def restart() -> tuple[str, str, list[str]]:
        async with open_sandbox_factory(pool_size=0, network=NetworkConfig()):
            return nft_table(server.pid), nft_table(os.getpid()), brazier_links()

    old, new, links = asyncio.run(restart())
    assert old == ""
    assert f"brazier pid {os.getpid()}" in new
    assert not [n for n in links if n.startswith(f"bz{server.pid:x}.")], links
    mine = f"bz{os.getpid():x}."
    deadline = time.monotonic() + 5
    while any(n.startswith(mine) for n in brazier_links()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nft_table(os.getpid()) == ""  # and the new server's own are gone at its stop
    assert not [n for n in brazier_links() if n.startswith(mine)]


def test_two_servers_share_the_host(tmp_path: Path, internet: Internet) -> None:
    """A second server on the host gets its own table and address block; both have egress."""
    other = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, cwd="/"
    )
    assert other.stdout is not None
    try:
        assert other.stdout.readline().strip() == "ready"
        code = code_dir(tmp_path, LISTENER)

        async def go() -> tuple[str, str]:
            async with open_sandbox_factory(
                pool_size=1, node_pool_size=0, network=NetworkConfig()
            ) as f:
                sbx = await f.start(
                    SandboxSpec(runtime="provided.al2023", code_dir=code, handler="h")
                )
                address = json.loads((await sbx.read_output()).decode())["address"]
                await sbx.kill()
                return address, nft_table(os.getpid())

        address, table = asyncio.run(go())
        theirs = nft_table(other.pid)
    finally:
        other.terminate()
        other.wait()
        other.stdout.close()
    assert f"brazier pid {other.pid}" in theirs

    def block(listing: str) -> ipaddress.IPv4Network:
        m = re.search(r"ip saddr (\S+/19) ", listing)
        assert m, listing
        return ipaddress.IPv4Network(m.group(1))

    assert block(theirs) != block(table)  # each server its own block of 100.72.0.0/16
    assert ipaddress.IPv4Address(address) in block(table), address


LISTENER = r"""
#!/usr/bin/python3
import json, socket
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe.connect(("203.0.113.2", 9))
print(json.dumps({"address": probe.getsockname()[0]}), flush=True)
"""
