"""Spoofing from an environment: the runtime cannot craft packets or change its address, and a
packet with a forged source (sent by root inside the environment's namespace, more than a
function can do) is dropped by the host's reverse-path filter."""

from __future__ import annotations

import asyncio
import errno
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from brazier.sandbox import LinuxSandboxFactory, open_sandbox_factory
from brazier.sandbox.base import SandboxSpec
from brazier.sandbox.network import NetworkConfig

from .conftest import Internet, code_dir, needs_root

pytestmark = [pytest.mark.sandbox, needs_root]

PROBE = r"""
#!/usr/bin/python3
import json, socket, struct, time
def err(fn):
    try:
        fn(); return 0
    except OSError as e:
        return e.errno
def raw(): socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
def packet(): socket.socket(17, socket.SOCK_RAW, 0)
def transparent():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT: send from any address
def freebind():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: bind a foreign address...
    s.bind(("100.72.0.250", 5353))
    s.sendto(b"x", ("203.0.113.2", 53))  # ...but sending from it needs the route to agree
def readdress():  # RTM_NEWADDR for eth0: needs CAP_NET_ADMIN
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    idx = socket.if_nametoindex("eth0")
    body = struct.pack("=BBBBI", 2, 32, 0, 0, idx) + struct.pack("=HH4s", 8, 2, bytes([100, 72, 0, 250]))
    s.send(struct.pack("=IHHII", 16 + len(body), 20, 1 | 4 | 0x400, 1, 0) + body)
    reply = s.recv(4096)
    code = -struct.unpack_from("=i", reply, 16)[0]
    if code:
        raise OSError(code, "netlink")
out = {name: err(fn) for name, fn in (("raw", raw), ("packet", packet),
       ("transparent", transparent), ("freebind", freebind), ("readdress", readdress))}
out["ifaces"] = [n for _, n in socket.if_nameindex()]
print(json.dumps(out), flush=True)
time.sleep(10)
"""

SPOOF = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT (root in the namespace has CAP_NET_ADMIN)
s.bind((sys.argv[1], 5353))
for _ in range(20):
    s.sendto(b"spoofed", (sys.argv[2], 53))
"""


def rp_filter_drops() -> int:
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(row["IPReversePathFilter"])
    raise AssertionError("no TcpExt in /proc/net/netstat")


def test_no_spoofing_and_no_raw_sockets(tmp_path: Path, internet: Internet) -> None:
    code = code_dir(tmp_path, PROBE)

    async def go(f: LinuxSandboxFactory) -> tuple[dict[str, Any], int]:
        sbx = await f.start(SandboxSpec(runtime="provided.al2023", code_dir=code, handler="h"))
        r = json.loads((await sbx.read_output()).decode().splitlines()[0])
        before = rp_filter_drops()
        forged = "100.72.0.250"  # another environment's would-be address
        proc = await asyncio.create_subprocess_exec(
            "nsenter", "-t", str(sbx.pid), "-n", sys.executable, "-c", SPOOF, forged,
            internet.address,
        )  # fmt: skip
        assert await proc.wait() == 0
        await asyncio.sleep(0.2)
        dropped = rp_filter_drops() - before
        await sbx.kill()
        return r, dropped

    config = NetworkConfig(upstream_dns=internet.address)

    async def main() -> tuple[dict[str, Any], int]:
        async with open_sandbox_factory(pool_size=1, node_pool_size=0, network=config) as f:
            return await go(f)

    r, dropped = asyncio.run(main())
    assert r["ifaces"] == ["lo", "eth0"], r
    assert r["raw"] == errno.EPERM
    assert r["packet"] == errno.EAFNOSUPPORT
    assert r["transparent"] == errno.EPERM
    # the kernel refuses to route from a non-local source
    assert r["freebind"] in (errno.EINVAL, errno.ENETUNREACH, errno.EADDRNOTAVAIL), r
    assert r["readdress"] == errno.EPERM
    assert dropped >= 20, dropped  # the host's strict reverse-path filter
