"""Reading a node's own interface address (the Linux dataplane, where the node has its IP)."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Interface

from pyroute2 import IPRoute

from plugins.ipam.api import IPAMError


def interface_ipv4(ifname: str) -> IPv4Interface:
    """The first IPv4 address (with prefix) of ``ifname`` in this process's network namespace."""
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=ifname)
        if not index:
            raise IPAMError(f"interface {ifname!r} (ipam.node_interface) does not exist")
        for msg in ipr.get_addr(family=socket.AF_INET, index=index[0]):
            return IPv4Interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
    raise IPAMError(f"interface {ifname!r} (ipam.node_interface) has no IPv4 address")


def interface_holding(address: IPv4Address) -> IPv4Interface:
    """``address`` with the prefix of the interface that holds it in this network namespace."""
    with IPRoute() as ipr:
        for msg in ipr.get_addr(family=socket.AF_INET):
            if msg.get("IFA_ADDRESS") == str(address):
                return IPv4Interface(f"{address}/{msg['prefixlen']}")
    raise IPAMError(f"no interface of this node holds {address} (ipam.node_ip)")
