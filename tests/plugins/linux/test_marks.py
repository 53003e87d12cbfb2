"""Ownership marks and error classification (pure)."""

from __future__ import annotations

import errno

from pyroute2.netlink.exceptions import NetlinkError

from plugins.kvscheduler.api import TransientError
from plugins.linux.descriptors.route import RouteDescriptor
from plugins.linux.links import Mark
from plugins.linux.netns import NamespaceNotFoundError


def test_mark_roundtrip() -> None:
    plain = Mark("config/linux/v1/vxlan/-/contiv-vxlan")
    assert plain.alias() == "contiv:config/linux/v1/vxlan/-/contiv-vxlan"
    assert Mark.parse(plain.alias()) == plain
    veth = Mark("config/linux/v1/veth/pod-1", "/var/run/netns/a b", "eth0")
    assert Mark.parse(veth.alias()) == veth
    assert Mark.parse(None) is None
    assert Mark.parse("") is None
    assert Mark.parse("uplink to the ToR") is None


def test_retriable_classification() -> None:
    desc = RouteDescriptor()
    assert desc.is_retriable(TransientError("later"))
    assert desc.is_retriable(NetlinkError(errno.EBUSY))
    assert desc.is_retriable(OSError(errno.EAGAIN, "again"))
    assert not desc.is_retriable(NetlinkError(errno.EINVAL))
    assert not desc.is_retriable(OSError(errno.EPERM, "no"))
    assert not desc.is_retriable(NamespaceNotFoundError("x", "/var/run/netns/x"))
    assert not desc.is_retriable(ValueError("bug"))
