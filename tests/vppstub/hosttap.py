"""Real Linux TAP devices for the stand-in's TAPs (what VPP's tap_create_v3 makes on the host)."""

from __future__ import annotations

from pyroute2 import IPRoute, NetNS

ZERO_MAC = "00:00:00:00:00:00"


def _open(namespace: str) -> IPRoute | NetNS:
    if not namespace:
        return IPRoute()
    return NetNS(namespace) if namespace.startswith("/") else IPRoute(netns=namespace)


def create(namespace: str, ifname: str, mac: str, mtu: int) -> None:
    """A persistent tap ``ifname`` in ``namespace``, admin up, with ``mac`` (unless zero) and ``mtu``."""
    with _open(namespace) as ipr:
        ipr.link("add", ifname=ifname, kind="tuntap", mode="tap")
        index = ipr.link_lookup(ifname=ifname)[0]
        attrs: dict[str, object] = {"mtu": mtu, "state": "up"}
        if mac != ZERO_MAC:
            attrs["address"] = mac
        ipr.link("set", index=index, **attrs)


def delete(namespace: str, ifname: str) -> None:
    """Remove the tap; a namespace or link already gone is fine (the pod went first)."""
    try:
        with _open(namespace) as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if found:
                ipr.link("del", index=found[0])
    except OSError:
        pass
