"""The Linux side of a VPP TAP: mark it (interface alias) so the Linux descriptors may manage it.

VPP creates the TAP's Linux interface itself (name, namespace, MAC, MTU); what it cannot do is
give it the ownership mark the Linux descriptors look for. This sets the alias and the admin
state, in the namespace VPP put the interface in.
"""

from __future__ import annotations

import asyncio

from pyroute2 import IPRoute, NetNS


def _mark(namespace: str, ifname: str, alias: str) -> None:
    ipr = NetNS(namespace) if namespace.startswith("/") else IPRoute(netns=namespace) if namespace else IPRoute()
    with ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise OSError(f"the Linux side {ifname!r} of a VPP TAP is missing in namespace {namespace or '(own)'!r}")
        ipr.link("set", index=found[0], ifalias=alias, state="up")


async def mark_host_link(namespace: str, ifname: str, alias: str) -> None:
    """Set ``alias`` on ``ifname`` in ``namespace`` ("" = the agent's) and bring it up."""
    await asyncio.to_thread(_mark, namespace, ifname, alias)
