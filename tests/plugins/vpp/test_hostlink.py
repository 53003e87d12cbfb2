"""Marking the Linux side of a TAP: in the right namespace, never creating one."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from plugins.vpp.hostlink import mark_host_link


async def test_marks_link_in_namespace(pod_netns: str) -> None:
    ifname = f"vt{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["ip", "-n", pod_netns, "link", "add", ifname, "type", "veth", "peer", "name", "p" + ifname], check=True
    )
    await mark_host_link(f"/var/run/netns/{pod_netns}", ifname, "contiv:some/key")
    out = subprocess.run(
        ["ip", "-n", pod_netns, "-j", "link", "show", ifname], check=True, capture_output=True, text=True
    )
    (link,) = json.loads(out.stdout)
    assert link["ifalias"] == "contiv:some/key" and "UP" in link["flags"]


async def test_missing_link_or_namespace_is_an_error(pod_netns: str) -> None:
    with pytest.raises(OSError, match="missing in namespace"):
        await mark_host_link(pod_netns, "nosuchif0", "contiv:x")
    ghost = f"vppt-ghost-{uuid.uuid4().hex[:6]}"
    with pytest.raises(FileNotFoundError):
        await mark_host_link(ghost, "eth0", "contiv:x")
    assert not os.path.exists(f"/var/run/netns/{ghost}")
