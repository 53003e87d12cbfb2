"""Real Linux TAP devices for the stand-in's TAPs (what VPP's tap_create_v3 makes on the host).

Each runs inside the namespace in the worker thread of :mod:`plugins.linux.netns` (the
namespace never leaks into the caller's thread); the stand-in's threads run no event loop,
which pyroute2's synchronous API refuses.
"""

from __future__ import annotations

from pyroute2 import IPRoute

from plugins.linux.netns import run_in_namespace

ZERO_MAC = "00:00:00:00:00:00"


def create(namespace: str, ifname: str, mac: str, mtu: int) -> None:
    run_in_namespace(namespace, lambda: _create(ifname, mac, mtu))


def delete(namespace: str, ifname: str) -> None:
    """Remove the tap; a namespace or link already gone is fine (the pod went first)."""
    try:
        run_in_namespace(namespace, lambda: _delete(ifname))
    except OSError:
        pass


def _create(ifname: str, mac: str, mtu: int) -> None:
    """A persistent tap ``ifname``, admin up, with ``mac`` (unless zero) and ``mtu``."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=ifname, kind="tuntap", mode="tap")
        index = ipr.link_lookup(ifname=ifname)[0]
        attrs: dict[str, object] = {"mtu": mtu, "state": "up"}
        if mac != ZERO_MAC:
            attrs["address"] = mac
        ipr.link("set", index=index, **attrs)


def _delete(ifname: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            ipr.link("del", index=found[0])
