"""KSR against a real etcd and the HTTP fake of the Kubernetes API, through the real client."""

from __future__ import annotations

import asyncio

from core.etcdserver import EtcdServer
from core.kvdb.api import KVError
from core.kvdb.etcd import EtcdBroker
from plugins.ksr import keys as ks
from plugins.ksr import model as m
from tests.ksrfake.server import FakeKubernetes
from tests.plugins.ksr import helpers as h
from tests.plugins.ksr.conftest import RunKSR


def _populate(fake: FakeKubernetes) -> None:
    fake.apply("namespaces", h.namespace("default"))
    fake.apply("namespaces", h.namespace("prod"))
    for i in range(20):  # more than one list page (page size 7)
        fake.apply("pods", h.pod(f"web-{i}", ip=f"10.1.1.{i + 2}"))
    fake.apply("services", h.service("web"))
    fake.apply("endpointslices", h.endpointslice("web-abc", "web", ["10.1.1.2", "10.1.1.3"]))
    fake.apply("endpoints", h.endpoints("web", ["10.1.1.2"]))
    fake.apply("networkpolicies", h.policy("db-access", "prod"))
    fake.apply("nodes", h.node("node1"))


_all_synced = h.all_synced


async def test_initial_sync_of_every_resource(
    fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    # Stale state from an earlier run: swept or corrected by the resync.
    await broker.put(m.KSR_PREFIX + ks.pod_key("gone", "default"), b'{"name":"gone","namespace":"default"}')
    await broker.put(m.KSR_PREFIX + ks.pod_key("web-0", "default"), b'{"name":"web-0","namespace":"default"}')
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        assert await h.ksr_keys(broker, "pod") == {ks.pod_key(f"web-{i}", "default") for i in range(20)}
        pod = m.Pod.model_validate(await h.stored(broker, ks.pod_key("web-3", "default")))
        assert pod.ip_address == "10.1.1.5" and pod.ip_addresses == ["10.1.1.5"]
        assert pod.ready and not pod.terminating
        assert pod.annotations == {"contivpp.io/custom-if": "memif1/memif"}
        assert pod.containers[0].ports[0].container_port == 8080
        assert await h.ksr_keys(broker, "namespace") == {ks.namespace_key("default"), ks.namespace_key("prod")}
        svc = m.Service.model_validate(await h.stored(broker, ks.service_key("web", "default")))
        assert svc.cluster_ips == ["10.96.0.10"] and svc.ports[0].target_port.int_val == 8080
        eps = m.EndpointSlice.model_validate(await h.stored(broker, ks.endpointslice_key("web-abc", "default")))
        assert eps.service_name == "web" and [e.addresses for e in eps.endpoints] == [["10.1.1.2"], ["10.1.1.3"]]
        # The legacy Endpoints are not reflected unless configured.
        assert await h.ksr_keys(broker, "endpoints") == set()
        pol = m.Policy.model_validate(await h.stored(broker, ks.policy_key("db-access", "prod")))
        assert pol.policy_type is m.PolicyType.INGRESS
        assert pol.ingress_rules[0].from_[1].ip_block == m.IPBlock(cidr="10.0.0.0/8", except_=["10.1.0.0/16"])
        node = m.Node.model_validate(await h.stored(broker, ks.node_key("node1")))
        assert node.addresses[0] == m.NodeAddress(type="InternalIP", address="192.168.16.1")
        assert m.Pod.model_validate(await h.stored(broker, ks.pod_key("web-0", "default"))).ip_address == "10.1.1.2"
        assert (ksr.stats["pod"].adds, ksr.stats["pod"].updates, ksr.stats["pod"].deletes) == (19, 1, 1)
        # Paged lists were used.
        assert sum(1 for r, kind, q in fake_k8s.requests if r == "pods" and "continue" in q) >= 2


async def test_legacy_endpoints_switch(fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR) -> None:
    _populate(fake_k8s)
    async with run_ksr(fake_k8s, endpoints_source="endpoints") as ksr:
        await _all_synced(ksr)
        value = m.Endpoints.model_validate(await h.stored(broker, ks.endpoints_key("web", "default")))
        assert value.endpoint_subsets[0].addresses[0].ip == "10.1.1.2"
        assert await h.ksr_keys(broker, "endpointslice") == set()
        # Control-plane leader-election Endpoints: reflected once, their constant updates ignored.
        fake_k8s.apply("endpoints", h.endpoints("kube-scheduler", ["192.168.16.1"], ns="kube-system"))
        key = ks.endpoints_key("kube-scheduler", "kube-system")
        await h.wait_stored(broker, key, lambda v: v is not None)
        fake_k8s.apply("endpoints", h.endpoints("kube-scheduler", ["192.168.16.9"], ns="kube-system"))
        fake_k8s.apply("endpoints", h.endpoints("web", ["10.1.1.7"]))
        await h.wait_stored(
            broker, ks.endpoints_key("web", "default"),
            lambda v: v is not None and v["endpoint_subsets"][0]["addresses"][0]["ip"] == "10.1.1.7",
        )
        scheduler = await h.stored(broker, key)
        assert scheduler is not None and scheduler["endpoint_subsets"][0]["addresses"][0]["ip"] == "192.168.16.1"


async def test_add_update_delete_follow_the_watch(
    fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        fake_k8s.apply("pods", h.pod("api-1", ns="prod", ip="10.1.1.100"))
        await h.wait_stored(broker, ks.pod_key("api-1", "prod"), lambda v: v is not None)
        fake_k8s.apply("pods", h.pod("api-1", ns="prod", ip="10.1.1.101"))
        await h.wait_stored(
            broker, ks.pod_key("api-1", "prod"), lambda v: v is not None and v["ip_address"] == "10.1.1.101"
        )
        terminating = h.pod("api-1", ns="prod", ip="10.1.1.101")
        terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        fake_k8s.apply("pods", terminating)
        await h.wait_stored(broker, ks.pod_key("api-1", "prod"), lambda v: v is not None and v["terminating"])
        fake_k8s.delete("pods", "api-1", "prod")
        await h.wait_stored(broker, ks.pod_key("api-1", "prod"), lambda v: v is None)
        fake_k8s.apply("services", h.service("db", ns="prod", ip="10.96.0.20"))
        await h.wait_stored(broker, ks.service_key("db", "prod"), lambda v: v is not None)
        fake_k8s.delete("namespaces", "prod")
        await h.wait_stored(broker, ks.namespace_key("prod"), lambda v: v is None)
        # A change of nothing the agent sees (only the resourceVersion moves) writes nothing.
        before = ksr.stats["node"].model_copy()
        fake_k8s.apply("nodes", h.node("node1"))
        fake_k8s.apply("pods", h.pod("marker"))
        await h.wait_stored(broker, ks.pod_key("marker", "default"), lambda v: v is not None)
        await asyncio.sleep(0.3)
        assert ksr.stats["node"].updates == before.updates
        # 20 from the initial resync, then api-1 and marker; api-1 changed twice, deleted once.
        assert (ksr.stats["pod"].adds, ksr.stats["pod"].updates, ksr.stats["pod"].deletes) == (22, 2, 1)


async def test_malformed_object_is_counted_and_skipped(
    fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    bad = h.pod("broken")
    bad["spec"]["containers"][0]["ports"] = [{"containerPort": "not-a-number"}]
    fake_k8s.apply("pods", bad)
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        assert await h.stored(broker, ks.pod_key("broken", "default")) is None
        assert ksr.stats["pod"].arg_errors == 1
        bad_service = h.service("bad")
        bad_service["spec"]["ports"] = [{"name": "no-port"}]
        fake_k8s.apply("services", bad_service)
        fake_k8s.apply("pods", h.pod("after-bad"))
        # The reflector goes on with the next object.
        await h.wait_stored(broker, ks.pod_key("after-bad", "default"), lambda v: v is not None)
        await h.wait_for(lambda: _true(ksr.stats["service"].arg_errors == 1), what="service arg error")
        assert await h.stored(broker, ks.service_key("bad", "default")) is None
        # A good object turned bad keeps its last good value, also through a re-list and resync.
        turned = h.pod("web-4", ip="10.1.1.99")
        turned["status"]["podIPs"] = "not-a-list"
        fake_k8s.apply("pods", turned)
        await h.wait_for(lambda: _true(ksr.stats["pod"].arg_errors == 2), what="pod arg error")
        resyncs = ksr.stats["pod"].resyncs
        fake_k8s.compact()
        fake_k8s.end_watches()
        await h.wait_for(lambda: _true(ksr.stats["pod"].resyncs > resyncs and ksr.synced()["pod"]), what="resync")
        kept = await h.stored(broker, ks.pod_key("web-4", "default"))
        assert kept is not None and kept["ip_address"] == "10.1.1.6"


async def _true(value: bool) -> bool:
    return value


async def test_410_gone_relists(fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR) -> None:
    _populate(fake_k8s)
    fake_k8s.bookmark_interval_s = 0  # no bookmarks: the watch keeps the old version
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        lists_before = sum(1 for r, kind, _ in fake_k8s.requests if r == "pods" and kind == "list")
        # While the watch is broken, a pod is deleted and one added; the history is compacted.
        fake_k8s.delete("pods", "web-0", "default")
        fake_k8s.apply("pods", h.pod("late", ip="10.1.1.200"))
        fake_k8s.compact()
        fake_k8s.end_watches()
        await h.wait_stored(broker, ks.pod_key("late", "default"), lambda v: v is not None)
        await h.wait_stored(broker, ks.pod_key("web-0", "default"), lambda v: v is None)
        lists_after = sum(1 for r, kind, _ in fake_k8s.requests if r == "pods" and kind == "list")
        assert lists_after > lists_before
        # The same as an HTTP status.
        fake_k8s.gone_as_http_status = True
        fake_k8s.apply("pods", h.pod("later", ip="10.1.1.201"))
        fake_k8s.compact()
        fake_k8s.end_watches()
        await h.wait_stored(broker, ks.pod_key("later", "default"), lambda v: v is not None)


async def test_bookmarks_move_the_watch_version(
    fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        fake_k8s.apply("pods", h.pod("p1"))  # moves the global version past the node watch's
        await h.wait_stored(broker, ks.pod_key("p1", "default"), lambda v: v is not None)
        version = fake_k8s.resource_version

        def last_node_watch_version() -> int:
            watches = [q for r, kind, q in fake_k8s.requests if r == "nodes" and kind == "watch"]
            return int(watches[-1]["resourceVersion"])

        # No node changed, so only a bookmark can move the node watch's version forward; it shows
        # in the version the client asks for when its watch is re-opened.
        for _ in range(30):
            await asyncio.sleep(0.5)  # long enough for a bookmark (every 0.2 s)
            fake_k8s.end_watches()
            await asyncio.sleep(0.2)
            if last_node_watch_version() >= version:
                break
        assert last_node_watch_version() >= version
        node_lists = [1 for r, kind, _ in fake_k8s.requests if r == "nodes" and kind == "list"]
        assert len(node_lists) == 1


async def test_list_errors_back_off_and_recover(
    fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    fake_k8s.fail_lists = 10
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        assert fake_k8s.fail_lists == 0
        assert await h.stored(broker, ks.node_key("node1")) is not None


async def test_resync_after_etcd_restart(
    fake_k8s: FakeKubernetes, etcd: EtcdServer, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        resyncs = ksr.stats["pod"].resyncs
        etcd.stop()
        # Changes while etcd is down are not lost.
        fake_k8s.apply("pods", h.pod("during-outage", ip="10.1.1.150"))
        fake_k8s.delete("pods", "web-1", "default")

        async def noticed() -> bool:
            return not ksr.synced()["pod"]

        await h.wait_for(noticed, what="the outage to be noticed")
        etcd.start()
        await h.wait_stored(broker, ks.pod_key("during-outage", "default"), lambda v: v is not None, 20)
        await h.wait_stored(broker, ks.pod_key("web-1", "default"), lambda v: v is None)
        await _all_synced(ksr)
        assert ksr.stats["pod"].resyncs > resyncs


async def test_resync_after_etcd_wiped(
    fake_k8s: FakeKubernetes, etcd: EtcdServer, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        await h.wait_stored(broker, m.STATUS_GAUGES_KEY, lambda v: v is not None)
        # Keys deleted behind KSR's back (revision keeps growing): the vanished gauges tell.
        await broker.delete(m.KSR_PREFIX, prefix=True)
        await h.wait_stored(broker, ks.pod_key("web-5", "default"), lambda v: v is not None)
        assert ksr.reflectors is not None and ksr.reflectors.data_losses == 1
        # A replaced etcd (empty data dir, revision back to 1).
        etcd.wipe()
        await h.wait_stored(broker, ks.node_key("node1"), lambda v: v is not None, 20)
        await h.wait_stored(broker, ks.pod_key("web-5", "default"), lambda v: v is not None)
        await _all_synced(ksr)
        assert await h.ksr_keys(broker, "pod") == {ks.pod_key(f"web-{i}", "default") for i in range(20)}


async def test_gauges_and_node_deletion_cleanup(
    fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    fake_k8s.apply("nodes", h.node("node2", "192.168.16.2"))
    await broker.put(m.KSR_PREFIX + ks.allocated_id_key(1), b'{"id": 1, "name": "node1"}')
    await broker.put(m.KSR_PREFIX + ks.allocated_id_key(2), b'{"id": 2, "name": "node2", "ip_addresses": []}')
    await broker.put("/vnf-agent/node2/config/linux/v1/interface/x", b"{}")
    await broker.put("/vnf-agent/node1/config/linux/v1/interface/y", b"{}")
    async with run_ksr(fake_k8s) as ksr:
        await _all_synced(ksr)
        fake_k8s.delete("nodes", "node2")
        await h.wait_stored(broker, ks.allocated_id_key(2), lambda v: v is None)
        assert await broker.get("/vnf-agent/node2/config/linux/v1/interface/x") is None
        assert await h.stored(broker, ks.allocated_id_key(1)) == {"id": 1, "name": "node1"}
        assert await broker.get("/vnf-agent/node1/config/linux/v1/interface/y") is not None
        gauges = await h.wait_stored(
            broker, m.STATUS_GAUGES_KEY, lambda v: v is not None and v["stats"]["node"]["deletes"] == 1
        )
        assert gauges is not None and gauges["synced"]["pod"] is True
        assert gauges["stats"]["pod"]["adds"] == 20


async def test_revision_going_backwards_resyncs_everything(
    fake_k8s: FakeKubernetes, etcd: EtcdServer, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    _populate(fake_k8s)
    # The periodic monitor is off: this test drives the check itself. Leader election is off too:
    # the wipe also removes the election key, and losing and regaining leadership would replace
    # the reflectors (and their counters) under the check.
    async with run_ksr(fake_k8s, monitor_interval_s=1000, stats_interval_s=0.2, leader_election=False) as ksr:
        await _all_synced(ksr)
        assert ksr.reflectors is not None
        await ksr.reflectors.write_gauges()
        etcd.wipe()  # a replaced etcd: empty, its revision back to 1

        async def checked() -> bool:
            assert ksr.reflectors is not None
            try:
                await ksr.reflectors.check_datastore()
            except KVError:
                return False  # the client is still reconnecting
            return ksr.reflectors.data_losses == 1

        await h.wait_for(checked, 20, "the data loss to be detected")
        await h.wait_stored(broker, ks.pod_key("web-7", "default"), lambda v: v is not None)
        await _all_synced(ksr)
        assert await h.ksr_keys(broker, "pod") == {ks.pod_key(f"web-{i}", "default") for i in range(20)}
