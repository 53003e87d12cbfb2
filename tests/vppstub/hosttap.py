"""Real Linux TAP devices for the stand-in's TAPs (what VPP's tap_create_v3 makes on the host).

Each runs in a fresh thread inside the namespace: pyroute2's synchronous API refuses a thread
that runs an event loop, and the namespace must not leak into the caller's thread.
"""

from __future__ import annotations

from pyroute2 import IPRoute

from plugins.vpp.hostlink import run_in_namespace

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
