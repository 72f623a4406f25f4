"""Egress networking for environments (decision 0025): see ``egress.EgressNetwork``."""

from .config import DNS_ADDRESS, HOST_ADDRESS, HOST_NAME, NetworkConfig
from .egress import EgressNetwork, LeaseState, NetLease, NetworkUnavailable

__all__ = [
    "DNS_ADDRESS",
    "HOST_ADDRESS",
    "HOST_NAME",
    "EgressNetwork",
    "LeaseState",
    "NetLease",
    "NetworkConfig",
    "NetworkUnavailable",
]
