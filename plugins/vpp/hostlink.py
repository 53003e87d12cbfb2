"""The Linux side of a VPP TAP: mark it (interface alias) so the Linux descriptors may manage it.

VPP creates the TAP's Linux interface itself (name, namespace, MAC, MTU); what it cannot do is
give it the ownership mark the Linux descriptors look for. This sets the alias and the admin
state over a netlink socket opened in the namespace VPP put the interface in
(:func:`plugins.linux.netns.netlink`: no thread, and the namespace never leaks into other work).
"""

from __future__ import annotations

from plugins.linux.links import find_link
from plugins.linux.netns import netlink


async def mark_host_link(namespace: str, ifname: str, alias: str) -> None:
    """Set ``alias`` on ``ifname`` in ``namespace`` ("" = the agent's) and bring it up.

    ``namespace`` is a reference of :mod:`plugins.linux.netns` (a name under /var/run/netns or
    a path); a missing namespace raises ``NamespaceNotFoundError`` and is never created.
    """
    async with netlink(namespace) as ipr:
        link = await find_link(ipr, ifname)
        if link is None:
            raise OSError(f"the Linux side {ifname!r} of a VPP TAP is missing in namespace "
                          f"{namespace or '(own)'!r}")
        await ipr.link("set", index=link.index, ifalias=alias, state="up")
