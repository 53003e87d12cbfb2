"""The Linux side of a VPP TAP: mark it (interface alias) so the Linux descriptors may manage it.

VPP creates the TAP's Linux interface itself (name, namespace, MAC, MTU); what it cannot do is
give it the ownership mark the Linux descriptors look for. This sets the alias and the admin
state, in the namespace VPP put the interface in.
"""

from __future__ import annotations

import asyncio
import os

from pyroute2 import IPRoute, NetNS

NETNS_RUN_DIR = "/var/run/netns"


def _open(namespace: str) -> IPRoute | NetNS:
    """Netlink in ``namespace`` ("" = ours); never creates a namespace (pyroute2's default would)."""
    if not namespace:
        return IPRoute()
    path = namespace if namespace.startswith("/") else f"{NETNS_RUN_DIR}/{namespace}"
    if not os.path.exists(path):
        raise OSError(f"network namespace {namespace!r} does not exist")
    return NetNS(path, flags=0)


def _mark(namespace: str, ifname: str, alias: str) -> None:
    with _open(namespace) as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise OSError(f"the Linux side {ifname!r} of a VPP TAP is missing in namespace {namespace or '(own)'!r}")
        ipr.link("set", index=found[0], ifalias=alias, state="up")


async def mark_host_link(namespace: str, ifname: str, alias: str) -> None:
    """Set ``alias`` on ``ifname`` in ``namespace`` ("" = the agent's) and bring it up."""
    await asyncio.to_thread(_mark, namespace, ifname, alias)
