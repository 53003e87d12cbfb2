"""Fixtures for the contiv-cni tests: real namespaces, the binary on a CNI_PATH, a pod manager.

The pod manager runs in the test's event loop on a temporary socket; its minimal controller
wires each pod for real (a veth pair from a "node" namespace into the pod's namespace, the
pod address and default route), so CHECK and the chained reference plugins see a real pod.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from apps.cni.runtime import CNIRuntime, write_launcher
from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.podmanager.api import AddPod, DeletePod
from plugins.podmanager.config import PodManagerConfig
from plugins.podmanager.plugin import PodManagerPlugin
from tests.plugins.podmanager.consumer import MinimalController

PREFIX = "cnit"  # every namespace and link these tests create starts with it


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def host_ifname(container_id: str) -> str:
    return f"{PREFIX}{container_id[:11]}"


async def _ip(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ip", *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {err.decode().strip()}")


@dataclass
class Namespaces:
    """Network namespaces created for one test; all removed at the end."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    names: list[str] = field(default_factory=list)

    def create(self, role: str) -> str:
        name = f"{PREFIX}-{self.tag}-{role}"
        run("ip", "netns", "add", name)
        self.names.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def cleanup(self) -> None:
        for name in reversed(self.names):
            run("ip", "netns", "del", name, check=False)


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    ns = Namespaces()
    try:
        yield ns
    finally:
        ns.cleanup()


@pytest.fixture
def node(namespaces: Namespaces) -> str:
    """The "node" namespace: the runtime and reference plugins run here, host veths live here."""
    return namespaces.create("node")


@pytest.fixture
def cni_bin(tmp_path: Path) -> Path:
    """A CNI_PATH directory holding the contiv-cni launcher."""
    directory = tmp_path / "bin"
    directory.mkdir()
    write_launcher(directory)
    return directory


@pytest.fixture
def runtime(cni_bin: Path, node: str) -> CNIRuntime:
    return CNIRuntime([cni_bin, "/usr/lib/cni"], runtime_netns=node)


@dataclass
class Agent:
    """The pod manager under test and its wiring controller."""

    plugin: PodManagerPlugin
    controller: MinimalController
    socket: str
    node: str


def make_wiring_controller(node: str) -> MinimalController:
    async def wire(event: AddPod, address: str) -> None:
        pod = event.pod
        host = host_ifname(pod.container_id)
        peer = f"{host}p"[:15]
        try:
            await _ip("-n", node, "link", "del", host)
        except RuntimeError:
            pass  # not there: first wiring
        await _ip("-n", node, "link", "add", host, "type", "veth", "peer", "name", peer,
                  "netns", pod.netns_path)
        await _ip("-n", node, "link", "set", host, "up")
        nsenter = ("nsenter", f"--net={pod.netns_path}", "ip")
        for argv in (
            ("link", "set", peer, "name", pod.interface_name),
            ("addr", "add", f"{address}/24", "dev", pod.interface_name),
            ("link", "set", pod.interface_name, "up"),
            ("route", "add", "default", "via", "10.99.0.1", "dev", pod.interface_name),
        ):
            proc = await asyncio.create_subprocess_exec(
                *nsenter, *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
            _, err = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"pod {pod.id}: ip {' '.join(argv)}: {err.decode().strip()}")

    async def unwire(event: DeletePod) -> None:
        try:
            await _ip("-n", node, "link", "del", host_ifname(event.pod.container_id))
        except RuntimeError:
            pass  # already gone (e.g. the namespace was deleted)

    return MinimalController(wire=wire, unwire=unwire)


@pytest.fixture
async def agent(tmp_path: Path, node: str) -> AsyncIterator[Agent]:
    kvdb = KVDBPlugin(KVDBConfig(backend="memory"))
    await kvdb.init()
    config = PodManagerConfig(
        socket_path=str(tmp_path / "run" / "cni.sock"),
        records_file=str(tmp_path / "lib" / "pods.json"),
        event_timeout_s=10.0,
    )
    controller = make_wiring_controller(node)
    plugin = PodManagerPlugin(
        config, controller=controller, kvdb=kvdb,
        service_label=ServiceLabelPlugin(ServiceLabelConfig(label="cnit-node")),
    )
    await plugin.init()
    await plugin.after_init()
    try:
        yield Agent(plugin, controller, config.socket_path, node)
    finally:
        await plugin.close()
        await controller.close()
        await kvdb.close()
