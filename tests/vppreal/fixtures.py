"""Pytest fixtures for real-VPP tests (import them into a conftest or test module)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.vppreal import RealVPP, VPPInstall, find_vpp


@pytest.fixture(scope="session")
def vpp_install() -> VPPInstall:
    """The real VPP to test against; the test is skipped, with the reason, when there is none."""
    install, how = find_vpp()
    if install is None:
        pytest.skip(how)
    return install


class NodeVPPs:
    """Node namespaces, each with its own running VPP (made on demand, all removed at the end)."""

    def __init__(self, install: VPPInstall, tag: str, poll_sleep_usec: int = 100, extra_conf: str = "") -> None:
        self.install = install
        self.tag = tag
        self.poll_sleep_usec = poll_sleep_usec  # 100: napping VPPs, kind to a shared machine
        self.extra_conf = extra_conf  # more startup.conf (bench/vpp_throughput.py: worker threads)
        self.vpps: dict[str, RealVPP] = {}

    def node(self, name: str) -> RealVPP:
        """The VPP of node ``name`` (namespace ``vpp17-<tag>-<name>``), started on first use."""
        if name not in self.vpps:
            netns = f"vpp17-{self.tag}-{name}"
            subprocess.run(["ip", "netns", "add", netns], check=True)
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
            vpp = RealVPP(self.install, netns, f"{name}{self.tag[:4]}", poll_sleep_usec=self.poll_sleep_usec,
                          extra_conf=self.extra_conf)
            self.vpps[name] = vpp
            vpp.start()
        return self.vpps[name]

    def cleanup(self) -> None:
        for vpp in self.vpps.values():
            vpp.cleanup()
            subprocess.run(["ip", "netns", "del", vpp.netns], check=False)


@pytest.fixture(scope="module")
def node_vpps(vpp_install: VPPInstall) -> Iterator[NodeVPPs]:
    """Real VPPs, one per node namespace, shared by a module's tests (~285 MB each)."""
    nodes = NodeVPPs(vpp_install, f"{os.getpid() % 10000}{uuid.uuid4().hex[:4]}")
    try:
        yield nodes
    finally:
        nodes.cleanup()
