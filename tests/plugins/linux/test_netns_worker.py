"""Entering namespaces: the worker thread always goes home (or is replaced); sockets inline."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable

import pytest

import plugins.linux.netns as netns
from plugins.linux.netns import call_in_namespace, run_in_namespace
from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns

#: ioctl returning a descriptor of a socket's network namespace (linux/sockios.h).
SIOCGSKNS = 0x894C


def own_namespace() -> str:
    return os.readlink(f"/proc/self/task/{threading.get_native_id()}/ns/net")


def test_worker_returns_home_after_each_call(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    home = own_namespace()
    inside = run_in_namespace(ns, own_namespace)
    assert inside != home
    assert inside == f"net:[{os.stat(f'/var/run/netns/{ns}').st_ino}]"
    # The same worker thread serves the next call, from home again.
    assert run_in_namespace(ns, threading.get_native_id) == run_in_namespace(
        ns, threading.get_native_id
    )
    executor = netns._WORKER._executor
    assert executor is not None
    assert executor.submit(own_namespace).result() == home
    # An error inside the namespace still brings the worker home.
    with pytest.raises(ZeroDivisionError):
        run_in_namespace(ns, lambda: 1 // 0)
    assert executor.submit(own_namespace).result() == home


async def test_async_call_sees_the_namespace(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    ip("link", "add", "wk0", "type", "veth", "peer", "name", "wk1", ns=ns)
    dev = await call_in_namespace(ns, lambda: open("/proc/thread-self/net/dev").read())
    assert "wk0" in dev
    assert "wk0" not in await call_in_namespace("", lambda: open("/proc/thread-self/net/dev").read())


def test_worker_that_cannot_go_home_is_retired(
    make_netns: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = make_netns()
    run_in_namespace(ns, lambda: None)  # make sure a worker exists
    old = netns._WORKER._executor
    old_home = netns._WORKER._home
    real_setns = netns._setns

    def setns(fd: int) -> None:
        if fd == old_home:
            raise OSError("no way home")
        real_setns(fd)

    monkeypatch.setattr(netns, "_setns", setns)
    with pytest.raises(OSError, match="no way home"):
        run_in_namespace(ns, lambda: None)
    monkeypatch.setattr(netns, "_setns", real_setns)
    assert netns._WORKER._executor is None  # retired: its thread is never used again
    home = own_namespace()
    assert run_in_namespace(ns, own_namespace) != home
    fresh = netns._WORKER._executor
    assert fresh is not None and fresh is not old
    assert fresh.submit(own_namespace).result() == home


def test_netlink_socket_is_made_in_the_namespace_by_the_caller_who_stays_home(
    make_netns: Callable[[], str],
) -> None:
    ns = make_netns()
    home = own_namespace()
    fd = netns._netlink_socket_here(ns)
    assert fd is not None
    try:
        assert own_namespace() == home
        ns_of_socket = fcntl.ioctl(fd, SIOCGSKNS)  # a descriptor of the socket's namespace
        try:
            assert os.fstat(ns_of_socket).st_ino == os.stat(f"/var/run/netns/{ns}").st_ino
        finally:
            os.close(ns_of_socket)
    finally:
        os.close(fd)
    assert netns._netlink_socket_here("") is None  # the agent's own: the caller opens it
    with pytest.raises(netns.NamespaceNotFoundError):
        netns._netlink_socket_here("h9-missing-ns")
    assert own_namespace() == home
