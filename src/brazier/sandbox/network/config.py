"""What the operator sets for egress, and the fixed addresses environments see (decision 0025)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from brazier.model.egress import EGRESS_INTERNET, EgressPolicy

# Every brazier server of the host shares this range: each leases one block of it (a flock on
# LOCK_DIR/<block>, held while it runs; a killed server's lock ends with it) and gives each
# environment a /30 of its block.
DEFAULT_RANGE = ipaddress.IPv4Network("100.72.0.0/16")
BLOCK_PREFIX = 19  # 2,048 environments per server, 8 servers per /16
SLOT_PREFIX = 30
LOCK_DIR = Path("/run/brazier-net")
# Seen from inside every environment (the same read-only /etc for all): the resolver, DNAT'ed by
# the host to its upstream (AWS's resolver inside Lambda is 169.254.169.253 too), and the host's
# allowed services, DNAT'ed to the host's loopback.
DNS_ADDRESS = "169.254.169.253"
HOST_ADDRESS = "169.254.171.1"
HOST_NAME = "host.brazier.internal"
IFNAME_PREFIX = "bz"  # host side of every environment's veth: bz<server pid hex>.<slot hex>
PEER_NAME = "eth0"
TABLE_PREFIX = "brazier_"  # nftables table `inet brazier_<server pid>`, one per server
# Interface groups (IFLA_GROUP) of the host-side veths: the policy is a group, so assigning one
# to an environment is one netlink message; custom rule lists get a group each, from CUSTOM up.
GROUP_POOLED = 0x627A0000
GROUP_INTERNET = GROUP_POOLED + 1
GROUP_NONE = GROUP_POOLED + 2
GROUP_CUSTOM = GROUP_POOLED + 16
MAX_CUSTOM_POLICIES = 4096


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """``upstream_dns`` None: the host's own first IPv4 nameserver (see ``host_nameserver``).
    ``api_port``: brazier's own API port, reached from environments at ``HOST_NAME`` like an
    allowed host port, so that functions can call brazier (decision 0029)."""

    default: EgressPolicy = EGRESS_INTERNET
    allow_host_ports: tuple[int, ...] = ()
    api_port: int | None = None
    range: ipaddress.IPv4Network = DEFAULT_RANGE
    upstream_dns: str | None = None

    def __post_init__(self) -> None:
        if self.range.prefixlen > BLOCK_PREFIX:
            raise ValueError(
                f"the environments' range {self.range} must be /{BLOCK_PREFIX} or larger"
            )
        for port in self.allow_host_ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"--allow-host-port {port}: not a port")
        if self.api_port is not None and not 1 <= self.api_port <= 65535:
            raise ValueError(f"API port {self.api_port}: not a port")

    @property
    def host_ports(self) -> tuple[int, ...]:
        """Every host port DNAT'ed from ``HOST_NAME``: the allowed ones and the API's."""
        extra = (self.api_port,) if self.api_port is not None else ()
        return tuple(sorted({*self.allow_host_ports, *extra}))

    @property
    def blocks(self) -> list[ipaddress.IPv4Network]:
        return list(self.range.subnets(new_prefix=BLOCK_PREFIX))


SLOTS_PER_BLOCK = 1 << (SLOT_PREFIX - BLOCK_PREFIX)


def addresses(block: ipaddress.IPv4Network, slot: int) -> tuple[str, str]:
    """(host side, environment side) of ``slot``'s /30 in ``block``."""
    base = int(block.network_address) + 4 * slot
    return str(ipaddress.IPv4Address(base + 1)), str(ipaddress.IPv4Address(base + 2))


def host_nameserver(paths: tuple[Path, ...] = (
    Path("/run/systemd/resolve/resolv.conf"), Path("/etc/resolv.conf"),
)) -> str | None:  # fmt: skip
    """The host's first IPv4 nameserver (systemd-resolved's upstream list first: its stub at
    127.0.0.53 answers only its own loopback), or None."""
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                try:
                    return str(ipaddress.IPv4Address(fields[1]))
                except ValueError:
                    continue
    return None


def etc_files() -> dict[str, str]:
    """The environments' /etc/resolv.conf and /etc/hosts."""
    return {
        "resolv.conf": f"nameserver {DNS_ADDRESS}\noptions timeout:2 attempts:2\n",
        "hosts": f"127.0.0.1 localhost\n::1 localhost\n{HOST_ADDRESS} {HOST_NAME}\n",
    }
