"""Real Linux TAP devices for the stand-in's TAPs (what VPP's tap_create_v3 makes on the host)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from pyroute2 import IPRoute, NetNS

ZERO_MAC = "00:00:00:00:00:00"


def _open(namespace: str) -> IPRoute | NetNS:
    """Netlink in ``namespace``; never creates one (pyroute2's default flags would)."""
    if not namespace:
        return IPRoute()
    path = namespace if namespace.startswith("/") else f"/var/run/netns/{namespace}"
    if not os.path.exists(path):
        raise FileNotFoundError(f"no network namespace {namespace}")
    return NetNS(path, flags=0)


def _in_thread(fn: Callable[[], None]) -> None:
    """pyroute2's synchronous API refuses a thread with a running event loop: use a fresh one."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def create(namespace: str, ifname: str, mac: str, mtu: int) -> None:
    _in_thread(lambda: _create(namespace, ifname, mac, mtu))


def delete(namespace: str, ifname: str) -> None:
    _in_thread(lambda: _delete(namespace, ifname))


def _create(namespace: str, ifname: str, mac: str, mtu: int) -> None:
    """A persistent tap ``ifname`` in ``namespace``, admin up, with ``mac`` (unless zero) and ``mtu``."""
    with _open(namespace) as ipr:
        ipr.link("add", ifname=ifname, kind="tuntap", mode="tap")
        index = ipr.link_lookup(ifname=ifname)[0]
        attrs: dict[str, object] = {"mtu": mtu, "state": "up"}
        if mac != ZERO_MAC:
            attrs["address"] = mac
        ipr.link("set", index=index, **attrs)


def _delete(namespace: str, ifname: str) -> None:
    """Remove the tap; a namespace or link already gone is fine (the pod went first)."""
    try:
        with _open(namespace) as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if found:
                ipr.link("del", index=found[0])
    except OSError:
        pass
