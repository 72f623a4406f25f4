"""Fixtures for the egress suite: "the internet" is a test host in a network namespace these
tests create (veth to the host, TEST-NET-3 addresses), never an outside address."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

NET = "203.0.113"  # TEST-NET-3: public as far as the policies know, local to this test
# A /28 of it per test process, so that two runs on one host do not share addresses.
_BASE = 16 * (os.getpid() % 16)
HOST_SIDE, TEST_HOST = f"{NET}.{_BASE + 1}", f"{NET}.{_BASE + 2}"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")


@dataclass(frozen=True)
class Internet:
    address: str
    netns: str


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True)


@pytest.fixture(scope="session")
def internet() -> Iterator[Internet]:
    with test_internet() as inet:
        yield inet


@contextlib.contextmanager
def test_internet() -> Iterator[Internet]:
    """A test host in a network namespace of its own, reached through the host (see
    testhost.py); removed at exit."""
    name = f"bzt-inet-{os.getpid()}"
    veth = f"tinet{os.getpid() % 100000}"
    _ip("netns", "add", name)
    server = None
    try:
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        _ip("addr", "add", f"{HOST_SIDE}/28", "dev", veth)
        _ip("link", "set", veth, "up")
        _ip("-n", name, "addr", "add", f"{TEST_HOST}/28", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "route", "add", "default", "via", HOST_SIDE)
        script = Path(__file__).with_name("testhost.py")
        server = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, str(script), TEST_HOST],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield Internet(TEST_HOST, name)
    finally:
        if server is not None:
            server.kill()
            server.wait()
            for pipe in (server.stdin, server.stdout):
                if pipe is not None:
                    pipe.close()
        _ip("link", "del", veth, check=False)
        _ip("netns", "del", name, check=False)


def code_dir(tmp_path: Path, script: str) -> Path:
    d = tmp_path / "task"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    (d / "bootstrap").write_text(textwrap.dedent(script).lstrip())
    os.chmod(d / "bootstrap", 0o755)
    return d


def parse(text: str) -> dict[str, object]:
    out: dict[str, object] = {"_raw": text}
    for line in text.splitlines():
        if line.startswith("{"):
            out.update(json.loads(line))
    return out


def nft_table(pid: int) -> str:
    """The listing of server ``pid``'s table, or ""."""
    r = subprocess.run(
        ["nft", "list", "table", "inet", f"brazier_{pid}"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    return r.stdout if r.returncode == 0 else ""


def brazier_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], check=False, capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith("bz") and "." in n]
