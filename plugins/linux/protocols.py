"""IP protocol numbers by the lower-case names the models use (``tcp``, ``udp``, ``sctp``,
``icmp``): the one table for the whole project (nftables elements, conntrack, VPP ACLs and NAT)."""

from __future__ import annotations

import socket
from types import MappingProxyType

IP_PROTOCOLS = MappingProxyType({
    "icmp": socket.IPPROTO_ICMP,
    "tcp": socket.IPPROTO_TCP,
    "udp": socket.IPPROTO_UDP,
    "sctp": socket.IPPROTO_SCTP,
})
