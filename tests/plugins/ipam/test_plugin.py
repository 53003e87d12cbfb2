"""IPAMPlugin against a real etcd: persistence, restart recovery, exhaustion, stale release."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from core.etcdserver import EtcdServer
from core.kvdb.api import agent_prefix
from core.kvdb.plugin import KVDBPlugin
from plugins.controller.events import DBResync, KubeStateChange
from plugins.controller.txn import EventTransaction
from plugins.ipam.api import PoolExhaustedError
from plugins.ipam.store import PodIPAllocation, StateFileError
from plugins.ksr.model import Pod as K8sPod
from plugins.podmanager.api import PodID
from tests.plugins.ipam.helpers import Node

PREFIX = agent_prefix("node-a") + "ipam/allocations/"


def pod(i: int, ns: str = "default") -> PodID:
    return PodID(f"web-{i}", ns)


async def etcd_allocations(kvdb: KVDBPlugin) -> dict[PodID, IPv4Address]:
    records = await kvdb.broker.list_models(PREFIX, PodIPAllocation)
    return {r.pod: IPv4Address(r.ip_address) for r in records.values()}


def file_allocations(path: Path) -> dict[PodID, IPv4Address]:
    doc = json.loads(path.read_text())
    return {PodID(a["name"], a["namespace"]): IPv4Address(a["ip"]) for a in doc["allocations"]}


async def test_allocation_is_in_the_local_file_at_once_and_in_etcd_after_flush(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    try:
        assert ipam.plan().node_id == 1
        ip = ipam.allocate_pod_ip(pod(1))
        assert ip == IPv4Address("10.1.1.2")
        # Synchronous: on disk before allocate_pod_ip returned.
        assert file_allocations(tmp_path / "ipam.json") == {pod(1): ip}
        assert await ipam.flush_to_etcd(5)
        assert await etcd_allocations(etcd_kvdb) == {pod(1): ip}
        ipam.release_pod_ip(pod(1))
        await ipam.persisted()  # a release is written in the background (never blocks the loop)
        assert file_allocations(tmp_path / "ipam.json") == {}
        assert await ipam.flush_to_etcd(5)
        assert await etcd_allocations(etcd_kvdb) == {}
        assert ipam.pod_ip(pod(1)) is None
    finally:
        await node.stop()


async def test_restart_keeps_allocations_and_next_fit_position(etcd_kvdb: KVDBPlugin, tmp_path: Path) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    for i in range(4):
        ipam.allocate_pod_ip(pod(i))
    ipam.release_pod_ip(pod(3))  # .5 is free again, but next-fit goes on at .6
    await node.stop()

    again = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam2 = await again.start()
    try:
        assert dict(ipam2.allocations()) == {
            pod(0): IPv4Address("10.1.1.2"), pod(1): IPv4Address("10.1.1.3"), pod(2): IPv4Address("10.1.1.4")
        }
        assert ipam2.plan().node_id == 1  # reused by name
        assert ipam2.allocate_pod_ip(pod(9)) == IPv4Address("10.1.1.6")
    finally:
        await again.stop()


async def test_restart_without_local_file_restores_from_etcd(etcd_kvdb: KVDBPlugin, tmp_path: Path) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    held = {pod(i): ipam.allocate_pod_ip(pod(i)) for i in range(3)}
    await node.stop()  # flushes the queue to etcd
    (tmp_path / "ipam.json").unlink()

    again = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam2 = await again.start()
    try:
        assert dict(ipam2.allocations()) == held
        new = ipam2.allocate_pod_ip(pod(7))
        assert new not in held.values()
        assert new == IPv4Address("10.1.1.5")  # continues after the highest restored address
        assert file_allocations(tmp_path / "ipam.json") == {**held, pod(7): new}
    finally:
        await again.stop()


async def test_corrupt_local_file_is_set_aside_and_etcd_used(etcd_kvdb: KVDBPlugin, tmp_path: Path) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    held = {pod(1): ipam.allocate_pod_ip(pod(1))}
    await node.stop()
    (tmp_path / "ipam.json").write_text('{"version": 1, "allocations": [tru')

    again = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam2 = await again.start()
    try:
        assert dict(ipam2.allocations()) == held
        assert (tmp_path / "ipam.json.corrupt").read_text().startswith('{"version": 1')
    finally:
        await again.stop()


async def test_local_file_wins_over_a_stale_etcd_record_and_etcd_is_repaired(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    ipam.allocate_pod_ip(pod(1))  # .2
    await node.stop()
    # etcd still says an older pod holds .2 (its release never reached etcd), plus one more
    # pod whose allocation only etcd knows.
    stale = PodIPAllocation(pod_name="old", pod_namespace="default", ip_address="10.1.1.2")
    await etcd_kvdb.broker.put_model(PREFIX + "default/old", stale)
    extra = PodIPAllocation(pod_name="extra", pod_namespace="kube-system", ip_address="10.1.1.9")
    await etcd_kvdb.broker.put_model(PREFIX + "kube-system/extra", extra)

    again = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam2 = await again.start()
    try:
        expected = {pod(1): IPv4Address("10.1.1.2"), PodID("extra", "kube-system"): IPv4Address("10.1.1.9")}
        assert dict(ipam2.allocations()) == expected
        assert await ipam2.flush_to_etcd(5)
        assert await etcd_allocations(etcd_kvdb) == expected
        await ipam2.persisted()  # the merge's save runs in the background
        assert file_allocations(tmp_path / "ipam.json") == expected
    finally:
        await again.stop()


async def test_etcd_down_allocation_still_works_and_reaches_etcd_later(
    etcd: EtcdServer, etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    try:
        etcd.stop()
        ip = ipam.allocate_pod_ip(pod(1))  # never awaits etcd
        assert file_allocations(tmp_path / "ipam.json") == {pod(1): ip}
        assert not await ipam.flush_to_etcd(1.5)
        assert ipam.etcd_pending() == 1 and ipam.etcd_last_error()
        etcd.start()
        assert await ipam.flush_to_etcd(20)
        assert await etcd_allocations(etcd_kvdb) == {pod(1): ip}
        assert ipam.etcd_last_error() == ""
    finally:
        etcd.start()
        await node.stop()


async def test_exhausting_a_28_names_the_subnet_and_capacity(etcd_kvdb: KVDBPlugin, tmp_path: Path) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json", pod_subnet_one_node_prefix_len=28)
    ipam = await node.start()
    try:
        ips = {ipam.allocate_pod_ip(pod(i)) for i in range(12)}
        assert len(ips) == 12
        with pytest.raises(PoolExhaustedError, match=r"node subnet 10\.1\.0\.16/28 \(all 12 assignable"):
            ipam.allocate_pod_ip(pod(12))
        assert ipam.pod_ip(pod(12)) is None
        assert len(file_allocations(tmp_path / "ipam.json")) == 12
    finally:
        await node.stop()


async def test_allocations_of_vanished_pods_are_released_after_the_grace_period(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json", release_grace_s=10)
    ipam = await node.start()
    try:
        for i in range(3):
            ipam.allocate_pod_ip(pod(i))
        node.pods.add(pod(0))
        node.pods.add(pod(1))
        assert ipam.release_stale(now=100.0) == []  # pod 2 seen missing now
        node.pods.add(pod(2))  # it shows up after all (e.g. the pod manager wrote it late)
        assert ipam.release_stale(now=105.0) == []
        del node.pods.pods[pod(2)]
        del node.pods.pods[pod(1)]
        assert ipam.release_stale(now=106.0) == []
        assert ipam.release_stale(now=115.9) == []
        assert ipam.release_stale(now=116.0) == [pod(1), pod(2)]
        assert set(ipam.allocations()) == {pod(0)}
        assert await ipam.flush_to_etcd(5)
        assert set(await etcd_allocations(etcd_kvdb)) == {pod(0)}
    finally:
        await node.stop()


async def test_state_file_unwritable_refuses_the_allocation(etcd_kvdb: KVDBPlugin, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    node = Node(etcd_kvdb, state_dir / "ipam.json")
    ipam = await node.start()
    try:
        first = ipam.allocate_pod_ip(pod(1))
        state_dir.chmod(0o500)
        try:
            if os.geteuid() == 0:
                # root ignores directory permissions: make the temporary file's path a directory.
                state_dir.chmod(0o700)
                (state_dir / ".ipam.json.tmp").mkdir()
            with pytest.raises(StateFileError, match="cannot write IPAM state file"):
                ipam.allocate_pod_ip(pod(2))
            assert ipam.pod_ip(pod(2)) is None
            assert dict(ipam.allocations()) == {pod(1): first}
        finally:
            state_dir.chmod(0o700)
            if (state_dir / ".ipam.json.tmp").is_dir():
                (state_dir / ".ipam.json.tmp").rmdir()
        assert ipam.allocate_pod_ip(pod(2)) == IPv4Address("10.1.1.3")
    finally:
        await node.stop()


async def test_new_node_id_after_restart_drops_the_old_subnets_allocations(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    ipam.allocate_pod_ip(pod(1))
    await node.stop()
    # KSR released this node's ID (its k8s Node was deleted) and another node took ID 1.
    other = b'{"id": 1, "name": "someone-else"}'
    await etcd_kvdb.broker.put("/vnf-agent/contiv-ksr/allocatedIDs/1", other)

    again = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam2 = await again.start()
    try:
        assert ipam2.plan().node_id == 2
        assert dict(ipam2.allocations()) == {}
        assert ipam2.allocate_pod_ip(pod(1)) == IPv4Address("10.1.2.2")
        assert await ipam2.flush_to_etcd(5)
        assert await etcd_allocations(etcd_kvdb) == {pod(1): IPv4Address("10.1.2.2")}
    finally:
        await again.stop()


async def test_deferred_save_is_waited_for_and_ordered_with_plain_saves(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    state = tmp_path / "ipam.json"
    node = Node(etcd_kvdb, state)
    ipam = await node.start()
    try:
        first = ipam.allocate_pod_ip(pod(1), defer_save=True)
        second = ipam.allocate_pod_ip(pod(2), defer_save=True)
        await ipam.persisted()
        assert file_allocations(state) == {pod(1): first, pod(2): second}
        # A plain save queued after a deferred one is written after it: the file ends at the
        # latest state.
        ipam.allocate_pod_ip(pod(3), defer_save=True)
        ipam.release_pod_ip(pod(3))
        assert file_allocations(state) == {pod(1): first, pod(2): second}
        await ipam.persisted()
        assert file_allocations(state) == {pod(1): first, pod(2): second}
    finally:
        await node.stop()


async def test_failed_deferred_save_is_reported_by_persisted(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    try:
        ipam._file.path = blocker / "ipam.json"  # its directory cannot be created
        ip = ipam.allocate_pod_ip(pod(1), defer_save=True)
        with pytest.raises(StateFileError, match="not-a-directory"):
            await ipam.persisted()
        # The address stays reserved in memory (the pod is wired until it is deleted), and
        # the next successful save writes it.
        assert ipam.pod_ip(pod(1)) == ip
        ipam._file.path = tmp_path / "ipam.json"
        ipam.allocate_pod_ip(pod(2), defer_save=True)
        await ipam.persisted()
        assert set(file_allocations(tmp_path / "ipam.json")) == {pod(1), pod(2)}
    finally:
        await node.stop()


class _KubePods:
    """The ``pod`` resource of a Kubernetes state snapshot (what a resync reads)."""

    def __init__(self, *pods: K8sPod) -> None:
        self.pods = {f"{p.name}/namespace/{p.namespace}": p for p in pods}

    def list(self, keyword: str) -> dict[str, K8sPod]:
        return dict(self.pods) if keyword == "pod" else {}


async def test_address_released_by_del_is_not_adopted_back_from_an_older_kube_state(
    etcd_kvdb: KVDBPlugin, tmp_path: Path
) -> None:
    """etcd down, CNI DEL releases 10.1.1.x; etcd back, a resync from a snapshot older than
    KSR's delete lists the pod with its address: not adopted; KSR's delete then ends it."""
    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    try:
        gone = pod(0)
        ip = ipam.allocate_pod_ip(gone)
        stale = K8sPod(name=gone.name, namespace=gone.namespace, node_name="node-a",
                       ip_address=str(ip))
        ipam.release_pod_ip(gone)  # the DEL (the pod manager's record goes with it)
        ipam.resync(DBResync({}, {}), _KubePods(stale), 2, EventTransaction())  # type: ignore[arg-type]
        assert gone not in ipam.allocations()
        ipam.update(KubeStateChange("pod", "x", stale, None), EventTransaction())
        # An address Kubernetes reports for a pod this node did not release is adopted as before.
        other = K8sPod(name="other", namespace="default", node_name="node-a",
                       ip_address=str(ip + 1))
        ipam.resync(DBResync({}, {}), _KubePods(other), 3, EventTransaction())  # type: ignore[arg-type]
        assert ipam.allocations()[PodID("other", "default")] == ip + 1
        # ...and released at once when Kubernetes deletes it and no pod is wired here for it
        # (instead of after the stale sweep's grace period).
        ipam.update(KubeStateChange("pod", "y", other, None), EventTransaction())
        assert PodID("other", "default") not in ipam.allocations()
    finally:
        await node.stop()
