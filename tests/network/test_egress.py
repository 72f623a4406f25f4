"""Egress from real environments under each policy (decision 0025): the test internet, the host's
own services, DNS, and other environments."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from brazier.model.egress import EGRESS_NONE, EgressPolicy, parse_egress
from brazier.sandbox import LinuxSandboxFactory, open_sandbox_factory
from brazier.sandbox.base import SandboxSpec
from brazier.sandbox.network import HOST_NAME, NetworkConfig

from .conftest import Internet, code_dir, needs_root, parse

pytestmark = [pytest.mark.sandbox, needs_root]

# Runs each check named in $CHECKS and prints {name: result}: 0 (or a status / an address) on
# success, the errno (or the exception's name) on failure.
PROBE = r"""
#!/usr/bin/python3
import json, os, socket, struct, urllib.error, urllib.request
def tcp(host, port, send=b"ping"):
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(send)
        return s.recv(64)
def check(c):
    kind = c["kind"]
    if kind == "http":
        with urllib.request.urlopen(c["url"], timeout=3) as r:
            return r.read().decode()
    if kind == "tcp":
        return tcp(c["host"], c["port"]).decode()
    if kind == "dns":
        return socket.gethostbyname(c["host"])
    if kind == "pg":  # a PostgreSQL StartupMessage: the server answers 'R' (auth) or 'E'
        params = b"user\0postgres\0database\0postgres\0\0"
        msg = struct.pack("!ii", 8 + len(params), 196608) + params
        return tcp(c["host"], c["port"], msg)[:1].decode()
out = {}
for c in json.loads(os.environ["CHECKS"]):
    try:
        out[c["name"]] = check(c)
    except urllib.error.URLError as e:
        out[c["name"]] = getattr(e.reason, "errno", None) or type(e.reason).__name__
    except OSError as e:
        out[c["name"]] = e.errno or type(e).__name__
    except Exception as e:
        out[c["name"]] = type(e).__name__
print(json.dumps(out), flush=True)
"""


def _spec(
    code: Path, checks: list[dict[str, Any]], egress: EgressPolicy | None = None
) -> SandboxSpec:
    return SandboxSpec(
        runtime="provided.al2023", code_dir=code, handler="h",
        env={"CHECKS": json.dumps(checks)}, egress=egress,
    )  # fmt: skip


async def _probe(f: LinuxSandboxFactory, code: Path, checks: list[dict[str, Any]],
                 egress: EgressPolicy | None = None) -> dict[str, Any]:  # fmt: skip
    sbx = await f.start(_spec(code, checks, egress))
    out = b""
    async with asyncio.timeout(30):
        while chunk := await sbx.read_output():
            out += chunk
    await sbx.kill()
    return parse(out.decode())


def _run(config: NetworkConfig, go: Any) -> Any:
    async def main() -> Any:
        async with open_sandbox_factory(pool_size=1, node_pool_size=0, network=config) as f:
            return await go(f)

    return asyncio.run(main())


def _checks(inet: Internet) -> list[dict[str, Any]]:
    return [
        {"name": "http", "kind": "http", "url": f"http://{inet.address}/"},
        {"name": "echo81", "kind": "tcp", "host": inet.address, "port": 81},
        {"name": "dns", "kind": "dns", "host": "hello.brazier.test"},
        {"name": "pg", "kind": "pg", "host": HOST_NAME, "port": 5432},
        {"name": "host_lo", "kind": "tcp", "host": "127.0.0.1", "port": 5432},
        {"name": "redis", "kind": "tcp", "host": HOST_NAME, "port": 6379},
    ]


REFUSED = (111, 113)  # ECONNREFUSED (tcp reset), EHOSTUNREACH (icmp admin-prohibited)


def test_default_internet_reaches_the_test_host_and_not_the_host(
    tmp_path: Path, internet: Internet
) -> None:
    code = code_dir(tmp_path, PROBE)
    config = NetworkConfig(upstream_dns=internet.address)
    r = _run(config, lambda f: _probe(f, code, _checks(internet)))
    assert r["http"] == "hello from the test internet", r["_raw"]
    assert r["echo81"] == "ping", r["_raw"]
    assert r["dns"] == internet.address, r["_raw"]
    assert r["pg"] in REFUSED  # no --allow-host-port: the host's PostgreSQL is unreachable
    assert r["host_lo"] in REFUSED  # the sandbox's own loopback: nothing listens there
    assert r["redis"] in REFUSED


def test_egress_none_reaches_nothing(tmp_path: Path, internet: Internet) -> None:
    code = code_dir(tmp_path, PROBE)
    config = NetworkConfig(upstream_dns=internet.address, default=EGRESS_NONE)
    r = _run(config, lambda f: _probe(f, code, _checks(internet)))
    assert r["http"] in REFUSED, r["_raw"]
    assert r["echo81"] in REFUSED
    assert r["dns"] in (-3, -2), r["dns"]  # EAI_AGAIN / EAI_NONAME: an ordinary DNS error


def test_function_policy_narrows_and_widens_the_default(tmp_path: Path, internet: Internet) -> None:
    code = code_dir(tmp_path, PROBE)
    checks = _checks(internet)

    async def go(f: LinuxSandboxFactory) -> tuple[dict[str, Any], ...]:
        port80 = await _probe(f, code, checks, parse_egress(f"{internet.address}/32:80"))
        net = await _probe(f, code, checks, parse_egress("203.0.113.0/24"))
        none = await _probe(f, code, checks, EGRESS_NONE)
        return port80, net, none

    # server default none: a function's rule list widens it, its own "none" keeps it shut
    config = NetworkConfig(upstream_dns=internet.address, default=EGRESS_NONE)
    port80, net, none = _run(config, go)
    assert port80["http"] == "hello from the test internet", port80["_raw"]
    assert port80["echo81"] in REFUSED
    assert port80["dns"] == internet.address  # DNS works under every policy but none
    assert net["http"] == "hello from the test internet"
    assert net["echo81"] == "ping"
    assert none["echo81"] in REFUSED


def test_allowed_host_port_reaches_host_postgresql(tmp_path: Path, internet: Internet) -> None:
    pg = socket.socket()
    try:
        pg.settimeout(1)
        pg.connect(("127.0.0.1", 5432))
    except OSError:
        pytest.skip("no PostgreSQL on the host's 127.0.0.1:5432")
    finally:
        pg.close()
    code = code_dir(tmp_path, PROBE)
    config = NetworkConfig(upstream_dns=internet.address, allow_host_ports=(5432,))
    r = _run(config, lambda f: _probe(f, code, _checks(internet)))
    assert r["pg"] in ("R", "E"), r["_raw"]  # PostgreSQL's own answer to a startup message
    assert r["redis"] in REFUSED  # only the ports named
    assert r["host_lo"] in REFUSED


LISTENER = r"""
#!/usr/bin/python3
import json, socket
s = socket.socket(); s.bind(("0.0.0.0", 8080)); s.listen()
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); probe.connect(("203.0.113.2", 9))
print(json.dumps({"address": probe.getsockname()[0]}), flush=True)
s.settimeout(8)
try:
    c, _ = s.accept(); print(json.dumps({"accepted": True}), flush=True)
except OSError:
    print(json.dumps({"accepted": False}), flush=True)
"""


def test_environments_cannot_reach_each_other(tmp_path: Path, internet: Internet) -> None:
    listener = code_dir(tmp_path / "a", LISTENER) if (tmp_path / "a").mkdir() is None else None
    prober = code_dir(tmp_path, PROBE)
    assert listener is not None

    async def go(f: LinuxSandboxFactory) -> tuple[str, dict[str, Any]]:
        a = await f.start(SandboxSpec(runtime="provided.al2023", code_dir=listener, handler="h"))
        first = json.loads((await a.read_output()).decode().splitlines()[0])
        address = first["address"]
        checks = [{"name": "peer", "kind": "tcp", "host": address, "port": 8080},
                  {"name": "gw", "kind": "tcp", "host": address.rsplit(".", 1)[0] + ".1",
                   "port": 22}]  # fmt: skip
        r = await _probe(f, prober, checks)
        await a.kill()
        return address, r

    address, r = _run(NetworkConfig(upstream_dns=internet.address), go)
    assert address.startswith("100.72."), address
    assert r["peer"] in REFUSED, r["_raw"]
    assert r["gw"] in REFUSED
