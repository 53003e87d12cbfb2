"""The Linux side of a VPP TAP: mark it (interface alias) so the Linux descriptors may manage it.

VPP creates the TAP's Linux interface itself (name, namespace, MAC, MTU); what it cannot do is
give it the ownership mark the Linux descriptors look for. This sets the alias and the admin
state, in the namespace VPP put the interface in (entered by a short-lived thread, so the
namespace never leaks into other work).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from pyroute2 import IPRoute

T = TypeVar("T")
NETNS_RUN_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def namespace_path(namespace: str) -> str:
    return namespace if namespace.startswith("/") else f"{NETNS_RUN_DIR}/{namespace}"


def run_in_namespace(namespace: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a new thread inside ``namespace`` ("" = ours); never creates a namespace."""
    path = namespace_path(namespace) if namespace else ""
    result: list[T] = []
    errors: list[BaseException] = []

    def body() -> None:
        try:
            if path:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns {path}: {os.strerror(err)}")
                finally:
                    os.close(fd)
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            errors.append(exc)

    thread = threading.Thread(target=body, name="contiv-vpp-netns", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _mark(ifname: str, alias: str, namespace: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise OSError(f"the Linux side {ifname!r} of a VPP TAP is missing in namespace {namespace or '(own)'!r}")
        ipr.link("set", index=found[0], ifalias=alias, state="up")


async def mark_host_link(namespace: str, ifname: str, alias: str) -> None:
    """Set ``alias`` on ``ifname`` in ``namespace`` ("" = the agent's) and bring it up."""
    await asyncio.to_thread(run_in_namespace, namespace, lambda: _mark(ifname, alias, namespace))
