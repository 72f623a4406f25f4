"""Egress for environments: a veth per environment made while the pool fills, NAT, policies.

Life of one server's network: ``open`` (sweep what a killed server left, enable forwarding,
lease an address block, create table ``inet brazier_<pid>``) -> ``attach`` per pooled
environment (veth pair, the peer straight into the environment's namespace as eth0, a /30, a
default route; policy group "pooled": nothing passes) -> ``apply`` at start (one netlink
message: the function's policy group) -> ``release`` when it dies (the pair is deleted, the
slot reused) -> ``close`` (table deleted, block released).

All netlink work off the event loop runs on one dedicated thread (``_thread``): it is the only
thread that ever enters an environment's namespace (to open a socket there, see
``netlink.netlink_in``). ``apply`` runs on the loop with a socket of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import fcntl
import ipaddress
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from brazier.model.egress import INTERNET, NONE, EgressPolicy

from ..cgroups import pid_alive
from .config import (
    GROUP_CUSTOM,
    GROUP_INTERNET,
    GROUP_NONE,
    GROUP_POOLED,
    IFNAME_PREFIX,
    LOCK_DIR,
    MAX_CUSTOM_POLICIES,
    PEER_NAME,
    SLOT_PREFIX,
    SLOTS_PER_BLOCK,
    NetworkConfig,
    addresses,
    etc_files,
    host_nameserver,
)
from .netlink import Netlink, netlink_in
from .rules import (
    NftError,
    brazier_tables,
    delete_table,
    policy_elements,
    ruleset,
    run_nft,
    run_nft_async,
    table_name,
)

_log = logging.getLogger(__name__)
_open_in_process: list[EgressNetwork] = []  # at most one: names and the table are per process
_OURS = re.compile(rf"^{IFNAME_PREFIX}([0-9a-f]{{1,6}})\.([0-9a-f]{{1,4}})$")


class NetworkUnavailable(OSError):
    """Egress cannot be set up on this host (no nftables, no permission, another owner)."""


class LeaseState(enum.Enum):
    POOLED = "pooled"
    ASSIGNED = "assigned"
    RELEASED = "released"


_TRANSITIONS = {
    LeaseState.POOLED: {LeaseState.ASSIGNED, LeaseState.RELEASED},
    LeaseState.ASSIGNED: {LeaseState.RELEASED},
    LeaseState.RELEASED: set(),
}


@dataclass(slots=True)
class NetLease:
    """One environment's veth: its slot, host-side interface and addresses."""

    slot: int
    ifname: str
    index: int
    host_address: str
    address: str
    state: LeaseState = LeaseState.POOLED

    def to(self, state: LeaseState) -> bool:
        if state not in _TRANSITIONS[self.state]:
            return False
        self.state = state
        return True


def _sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class EgressNetwork:
    def __init__(self, config: NetworkConfig) -> None:
        self.config = config
        self._pid = os.getpid()
        self._free: collections.deque[int] = collections.deque(range(SLOTS_PER_BLOCK))
        self._block: ipaddress.IPv4Network | None = None
        self._block_lock = -1  # fd holding the flock on our block
        self.table = table_name(self._pid)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="brazier-net")
        self._host_ns = -1
        self._nl_thread: Netlink | None = None
        self._nl_loop: Netlink | None = None
        self._groups: dict[EgressPolicy, int] = {}
        self._group_locks: collections.defaultdict[EgressPolicy, asyncio.Lock] = (
            collections.defaultdict(asyncio.Lock)
        )
        self.upstream: str | None = None
        self._localnet = bool(config.host_ports)
        self.attached = 0

    # -- lifetime ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Sweep, then create this server's table. Raises NetworkUnavailable."""
        if _open_in_process:
            raise NetworkUnavailable(1, "another sandbox factory of this process has egress")
        try:
            self._host_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            self._nl_loop = Netlink()
            self._sweep()
            self._lease_block()
            self.upstream = self.config.upstream_dns or host_nameserver()
            if self.upstream is not None and self.upstream.startswith("127."):
                self._localnet = True
            # SAFETY: routing between the environments' veths and the uplink is what egress is;
            # Docker and Podman set the same. Left on at close (others may rely on it).
            _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            assert self._block is not None
            run_nft(ruleset(self.config, self._pid, self.upstream, self._block))
            _open_in_process.append(self)
        except (OSError, NftError) as e:
            self.close_sync()
            raise NetworkUnavailable(e.errno or 1, f"egress networking unavailable: {e}") from e

    def _sweep(self) -> None:
        """Delete the tables and veths killed servers left (their pid, in the names, is dead)."""
        for name, owner in brazier_tables().items():
            if owner == self._pid or not pid_alive(owner):
                delete_table(name)
        assert self._nl_loop is not None
        for name, index in self._nl_loop.links().items():
            m = _OURS.match(name)
            if m and not pid_alive(int(m.group(1), 16)):
                with contextlib.suppress(OSError):
                    # SAFETY: a veth of a dead brazier server (its pid in the name).
                    self._nl_loop.delete_link(index)

    def _lease_block(self) -> None:
        """Hold a flock on the first free block of the range (released when we exit, even by
        kill -9); servers sharing the host never share addresses."""
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        for block in self.config.blocks:
            path = LOCK_DIR / str(block).replace("/", "_")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._block, self._block_lock = block, fd
            return
        raise NetworkUnavailable(1, f"every block of {self.config.range} is in use")

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close_sync)

    def close_sync(self) -> None:
        self._thread.shutdown(wait=True)
        if self._nl_thread is not None:
            self._nl_thread.close()
            self._nl_thread = None
        if self._nl_loop is not None:
            for name, index in self._nl_loop.links().items():
                m = _OURS.match(name)
                if m and int(m.group(1), 16) == self._pid:
                    with contextlib.suppress(OSError):
                        # SAFETY: our own veths.
                        self._nl_loop.delete_link(index)
            self._nl_loop.close()
            self._nl_loop = None
        if self in _open_in_process:
            _open_in_process.remove(self)
            with contextlib.suppress(NftError):
                delete_table(self.table)
        if self._block_lock >= 0:
            os.close(self._block_lock)
            self._block_lock = -1
        if self._host_ns >= 0:
            os.close(self._host_ns)
            self._host_ns = -1

    # -- per environment --------------------------------------------------------------------------

    async def attach(self, pid: int) -> NetLease:
        """Give the environment whose PID 1 is ``pid`` its eth0 (pool-fill time)."""
        if not self._free:
            raise NetworkUnavailable(1, f"no free address in {self._block}")
        slot = self._free.popleft()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._attach, pid, slot
            )
        except BaseException:
            self._free.append(slot)
            raise

    def _attach(self, pid: int, slot: int) -> NetLease:
        if self._nl_thread is None:
            self._nl_thread = Netlink()
        nl = self._nl_thread
        ifname = f"{IFNAME_PREFIX}{self._pid:x}.{slot:x}"
        assert self._block is not None
        host_addr, addr = addresses(self._block, slot)
        netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            # SAFETY: a new veth pair whose peer goes straight into this environment's own
            # network namespace (its PID 1, just forked by our zygote).
            nl.create_veth(ifname, PEER_NAME, netns, GROUP_POOLED)
            index = nl.index(ifname)
            try:
                conf = f"/proc/sys/net/ipv4/conf/{ifname}"
                # SAFETY: per-interface settings of our own new veth only: strict reverse-path
                # filtering (a spoofed source is dropped), no IPv6 on the host side, and
                # route_localnet only when host ports are allowed (DNAT to 127.0.0.1).
                _sysctl(f"{conf}/rp_filter", "1")
                _sysctl(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "1")
                if self._localnet:
                    _sysctl(f"{conf}/route_localnet", "1")
                nl.add_address(index, host_addr, SLOT_PREFIX)
                nl.set_link(index, up=True)
                with netlink_in(netns, self._host_ns) as inside:
                    # SAFETY: configures eth0 inside the environment's own namespace.
                    peer = inside.index(PEER_NAME)
                    inside.add_address(peer, addr, SLOT_PREFIX)
                    inside.set_link(peer, up=True)
                    inside.add_default_route(peer, host_addr)
            except BaseException:
                with contextlib.suppress(OSError):
                    nl.delete_link(index)
                raise
        finally:
            os.close(netns)
        self.attached += 1
        return NetLease(slot, ifname, index, host_addr, addr)

    async def apply(self, lease: NetLease, policy: EgressPolicy | None) -> None:
        """Give an attached environment its function's policy (``None``: the server default)."""
        group = await self._group(policy or self.config.default)
        if not lease.to(LeaseState.ASSIGNED):
            raise NetworkUnavailable(1, f"{lease.ifname} is {lease.state.value}")
        assert self._nl_loop is not None
        # SAFETY: the interface group of our own veth; the rules match it.
        self._nl_loop.set_link(lease.index, group=group)

    async def _group(self, policy: EgressPolicy) -> int:
        if policy.kind == INTERNET:
            return GROUP_INTERNET
        if policy.kind == NONE:
            return GROUP_NONE
        group = self._groups.get(policy)
        if group is not None:
            return group
        async with self._group_locks[policy]:
            group = self._groups.get(policy)
            if group is None:
                if len(self._groups) >= MAX_CUSTOM_POLICIES:
                    raise NetworkUnavailable(1, "too many distinct egress policies")
                group = GROUP_CUSTOM + len(self._groups)
                try:
                    await run_nft_async(policy_elements(self.table, group, policy))
                except NftError as e:
                    raise NetworkUnavailable(1, str(e)) from e
                self._groups[policy] = group
            return group

    async def release(self, lease: NetLease) -> None:
        """The environment is dead: delete its veth (both ends) and free its slot."""
        if not lease.to(LeaseState.RELEASED):
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._release, lease)
        except RuntimeError:  # the thread is shut down: close() deletes what is left
            return
        self._free.append(lease.slot)

    def _release(self, lease: NetLease) -> None:
        if self._nl_thread is None:
            return
        with contextlib.suppress(OSError):  # gone already with its namespace
            # SAFETY: our own veth, by the index it was created with (indexes are not reused
            # until they wrap at 2**31).
            self._nl_thread.delete_link(lease.index)

    def write_etc(self, etc: Path) -> None:
        for name, text in etc_files().items():
            (etc / name).write_text(text)
            os.chmod(etc / name, 0o644)
