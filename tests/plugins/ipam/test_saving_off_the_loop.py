"""The event loop never waits for the local allocation file (defect 3 of issue 11), and an
allocation is still on disk before the CNI reply can hand it out."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from core.kvdb.plugin import KVDBPlugin
from plugins.controller.events import DBResync
from plugins.controller.txn import EventTransaction
from plugins.ipam.saver import AllocationSaver
from plugins.ipam.store import AllocationState, LocalAllocationFile
from plugins.ksr.model import Pod as K8sPod
from plugins.podmanager.api import PodID
from tests.plugins.ipam.helpers import Node
from tests.plugins.ipam.test_plugin import file_allocations, pod


class GatedFile(LocalAllocationFile):
    """The real file, behind a gate the test holds closed: a disk that hangs on fsync."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(path)
        self.loop = loop
        self.gate = threading.Event()
        self.gate.set()
        #: Set when a write found the event loop stuck (waiting for this very write).
        self.loop_blocked = False

    def save(self, state: AllocationState) -> None:
        if not self.gate.is_set():
            # A free loop runs this at once; a loop blocked on our write cannot (deadline
            # only bounds the failure of the old, blocking code).
            try:
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self.loop).result(20)
            except TimeoutError:
                self.loop_blocked = True
                return
            self.gate.wait()
        super().save(state)


async def test_release_merge_adoption_and_stale_release_do_not_wait_for_the_disk(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    path = tmp_path / "ipam.json"
    node = Node(etcd_kvdb, path, release_grace_s=0.0)
    ipam = await node.start()
    gated = GatedFile(path, asyncio.get_running_loop())
    # The plugin's own saver may still be writing what start-up saved: let it finish before
    # another writer of the same file takes over (two writers race on the temporary file).
    await ipam.persisted()
    ipam._saver.close()
    ipam._saver = AllocationSaver(gated)
    try:
        ip1 = ipam.allocate_pod_ip(pod(1), defer_save=True)
        ipam.allocate_pod_ip(pod(2), defer_save=True)
        await ipam.persisted()
        node.pods.add(pod(2))
        gated.gate.clear()

        # Every path below used to block the loop in an fsync: with the disk hung, each one
        # returns at once (the gate is still closed when they are done).
        ipam.release_pod_ip(pod(1))
        assert not gated.loop_blocked, "releasing an address waited for the disk"
        assert ipam.pod_ip(pod(1)) is None
        ipam.release_stale()  # pod 2 is wired, nothing else allocated: nothing to free
        reflected = K8sPod(name="seen", namespace="default", node_name="node-a", ip_address="10.1.1.40")
        ipam.resync(DBResync({"pod": {"seen/namespace/default": reflected}}, {}), _State({"seen": reflected}),
                    1, EventTransaction())
        assert ipam.pod_ip(PodID("seen", "default")) is not None
        assert not gated.loop_blocked, "an IPAM path waited for the disk on the event loop"

        # A new allocation handed out by a CNI reply waits for the disk.
        fresh = ipam.allocate_pod_ip(pod(3), defer_save=True)
        persisted = asyncio.ensure_future(ipam.persisted())
        done, _ = await asyncio.wait({persisted}, timeout=0.5)
        assert not done, "persisted() returned while the disk still hung"
        gated.gate.set()
        await persisted
        on_disk = file_allocations(path)
        assert on_disk[pod(3)] == fresh
        assert pod(1) not in on_disk and ip1 not in on_disk.values()
        assert PodID("seen", "default") in on_disk
    finally:
        gated.gate.set()
        await node.stop()


class _State:
    """The reflected Kubernetes state as ipam's resync reads it."""

    def __init__(self, pods: dict[str, K8sPod]) -> None:
        self.pods = {f"{name}/namespace/default": value for name, value in pods.items()}

    def list(self, resource: str) -> dict[str, K8sPod]:
        return dict(self.pods) if resource == "pod" else {}

    def get(self, resource: str, name: str) -> K8sPod | None:
        return self.list(resource).get(name)
