"""The nftables ruleset of a server's table ``inet brazier_<pid>``, and the ``nft`` runs.

Every environment's host-side veth is named ``bz<server pid hex>.<slot hex>`` and sits in the
interface group of its policy (config.GROUP_*): the rules match groups, so assigning a policy
never touches nftables. A custom rule list is added once per server, as elements of two sets
keyed by its group.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import subprocess

from brazier.model.egress import EgressPolicy

from .config import (
    DNS_ADDRESS,
    GROUP_INTERNET,
    GROUP_NONE,
    GROUP_POOLED,
    HOST_ADDRESS,
    IFNAME_PREFIX,
    TABLE_PREFIX,
    NetworkConfig,
)

NFT_TIMEOUT = 10.0
# Never reachable from an environment except when a rule names them (private) or at all (never).
PRIVATE = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")
NEVER = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")


class NftError(OSError):
    pass


def nft_path() -> str | None:
    return shutil.which("nft", path="/usr/sbin:/sbin:/usr/bin:/bin")


def table_name(pid: int) -> str:
    return f"{TABLE_PREFIX}{pid}"


def ifname_prefix(pid: int) -> str:
    return f"{IFNAME_PREFIX}{pid:x}."


def ruleset(
    config: NetworkConfig, pid: int, upstream: str | None, block: ipaddress.IPv4Network
) -> str:
    """The server's whole table, created in one ``nft -f`` transaction. It judges only its own
    veths (``bz<pid>.*``), so servers sharing a host do not see each other's environments."""
    ifs = f'"{ifname_prefix(pid)}*"'
    quiet = f"{{ {GROUP_POOLED:#x}, {GROUP_NONE:#x} }}"
    ports = ", ".join(str(p) for p in config.host_ports)
    host_dnat = (
        f"ip daddr {HOST_ADDRESS} tcp dport {{ {ports} }} dnat ip to 127.0.0.1" if ports else ""
    )
    dns_dnat = dns_accept = ""
    if upstream is not None:
        dns_dnat = (
            f"meta iifgroup {quiet} return\n"
            f"    ip daddr {DNS_ADDRESS} meta l4proto {{ tcp, udp }} th dport 53"
            f" dnat ip to {upstream}"
        )
        dns_accept = (
            f"ct status dnat ip daddr {upstream} meta l4proto {{ tcp, udp }} th dport 53 accept"
        )
    never = ", ".join((str(config.range), *NEVER))
    private = ", ".join(PRIVATE)
    return f"""
table inet {table_name(pid)} {{
  comment "brazier pid {pid}"
  set allow_addr {{ typeof meta iifgroup . ip daddr; flags interval; }}
  set allow_port {{ typeof meta iifgroup . ip daddr . tcp dport; flags interval; }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname {ifs} jump sandbox_dnat
  }}
  chain sandbox_dnat {{
    {host_dnat}
    {dns_dnat}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {block} oifname != {ifs} masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname {ifs} jump egress
    oifname {ifs} ct state established,related accept
    oifname {ifs} drop
  }}
  chain egress {{
    meta nfproto ipv6 drop
    ct state established,related accept
    meta iifgroup {quiet} jump refuse
    {dns_accept}
    ip daddr {{ {never} }} jump refuse
    meta l4proto {{ tcp, udp }} meta iifgroup . ip daddr . th dport @allow_port accept
    meta iifgroup . ip daddr @allow_addr accept
    ip daddr {{ {private} }} jump refuse
    meta iifgroup {GROUP_INTERNET:#x} accept
    jump refuse
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname {ifs} jump to_host
  }}
  chain to_host {{
    ct state established,related accept
    ct status dnat accept
    jump refuse
  }}
  chain refuse {{
    meta l4proto tcp reject with tcp reset
    reject with icmpx admin-prohibited
  }}
}}
"""


def policy_elements(table: str, group: int, policy: EgressPolicy) -> str:
    """The set elements granting ``group`` what ``policy``'s rules name."""
    addr: list[str] = []
    port: list[str] = []
    for rule in policy.rules:
        net = _interval(rule.network)
        if rule.port is None:
            addr.append(f"{group:#x} . {net}")
        else:
            port.append(f"{group:#x} . {net} . {rule.port}")
    out = ""
    if addr:
        out += f"add element inet {table} allow_addr {{ {', '.join(addr)} }}\n"
    if port:
        out += f"add element inet {table} allow_port {{ {', '.join(port)} }}\n"
    return out


def _interval(net: ipaddress.IPv4Network) -> str:
    if net.prefixlen == 32:
        return str(net.network_address)
    return f"{net.network_address}-{net.broadcast_address}"


def run_nft(script: str, *, check: bool = True) -> str:
    """Run ``nft -f -`` (one transaction) synchronously; returns stdout."""
    nft = nft_path()
    if nft is None:
        raise NftError(2, "nft not found: install Debian's nftables package")
    # SAFETY: changes only brazier's own tables (every script names one).
    proc = subprocess.run(
        [nft, "-f", "-"], input=script, capture_output=True, text=True, timeout=NFT_TIMEOUT,
        check=False, start_new_session=True,  # out of the terminal's Ctrl-C
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise NftError(1, f"nft failed: {proc.stderr.strip()[:500]}")
    return proc.stdout


async def run_nft_async(script: str) -> None:
    nft = nft_path()
    if nft is None:
        raise NftError(2, "nft not found: install Debian's nftables package")
    # SAFETY: adds elements to the sets of brazier's own table only.
    proc = await asyncio.create_subprocess_exec(
        nft,
        "-f",
        "-",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    async with asyncio.timeout(NFT_TIMEOUT):
        _out, err = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise NftError(1, f"nft failed: {err.decode(errors='replace').strip()[:500]}")


_TABLE = re.compile(rf"^table inet {TABLE_PREFIX}(\d+)$", re.MULTILINE)


def brazier_tables() -> dict[str, int]:
    """brazier's tables on this host: name -> owner pid."""
    try:
        text = run_nft("list tables inet\n")
    except NftError:
        return {}
    return {f"{TABLE_PREFIX}{m.group(1)}": int(m.group(1)) for m in _TABLE.finditer(text)}


def delete_table(name: str) -> None:
    # SAFETY: one of brazier's own tables ("destroy" would need nft >= 1.0.8).
    run_nft(f"delete table inet {name}\n", check=False)
