"""Egress policies: what an environment's network may reach (decision 0025).

The grammar of the ``brazier:egress`` tag and of the server's ``--egress`` default::

    policy := "internet" | "none" | rule (SEP rule)*
    SEP    := "," or spaces (AWS tag values cannot hold a comma: tags use spaces)
    rule   := CIDR [":" PORT]        CIDR: IPv4 address or IPv4 network a.b.c.d/n (host bits 0)
                                     PORT: 1-65535; without a port, every TCP/UDP port and ICMP

Spaces around commas are ignored; at most ``MAX_RULES`` rules; no duplicates.
``internet`` is every public address (private, loopback, link-local and the environments' own
ranges are never reachable that way); a rule list reaches only the networks it names (a private
network only when named). The host's own services are reachable in every policy only on the
ports the operator allows (``--allow-host-port``), at ``host.brazier.internal``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

EGRESS_TAG = "brazier:egress"
INTERNET = "internet"
NONE = "none"
MAX_RULES = 64
_SEP = re.compile(r"\s*,\s*|\s+")


@dataclass(frozen=True, slots=True, order=True)
class EgressRule:
    network: ipaddress.IPv4Network
    port: int | None = None  # None: every port (and ICMP)

    def __str__(self) -> str:
        return f"{self.network}:{self.port}" if self.port is not None else str(self.network)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """``internet`` (everything public), ``none`` (nothing), or exactly ``rules``."""

    kind: str  # INTERNET, NONE or "rules"
    rules: tuple[EgressRule, ...] = ()

    def __str__(self) -> str:
        return self.kind if self.kind != "rules" else ",".join(str(r) for r in self.rules)


EGRESS_INTERNET = EgressPolicy(INTERNET)
EGRESS_NONE = EgressPolicy(NONE)


def parse_egress(value: str) -> EgressPolicy:
    """The policy ``value`` names; ValueError with a message fit for the caller otherwise."""
    text = value.strip()
    if text == INTERNET:
        return EGRESS_INTERNET
    if text == NONE:
        return EGRESS_NONE
    parts = _SEP.split(text)
    if not text or any(not p for p in parts):
        raise ValueError(
            f"{EGRESS_TAG} must be 'internet', 'none' or a list of CIDR[:port] separated by"
            " spaces or commas"
        )
    if len(parts) > MAX_RULES:
        raise ValueError(f"{EGRESS_TAG} allows at most {MAX_RULES} rules, not {len(parts)}")
    rules = [_rule(p) for p in parts]
    if len(set(rules)) != len(rules):
        raise ValueError(f"{EGRESS_TAG} lists a rule twice")
    return EgressPolicy("rules", tuple(sorted(rules)))


def _rule(part: str) -> EgressRule:
    cidr, sep, port_text = part.partition(":")
    port: int | None = None
    if sep:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{EGRESS_TAG}: bad port in {part!r} (1-65535)")
        port = int(port_text)
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as e:
        raise ValueError(f"{EGRESS_TAG}: {part!r} is not an IPv4 CIDR[:port] ({e})") from None
    return EgressRule(network, port)
