"""KSR against a real kube-apiserver v1.28 (KUBE_BIN_DIR) and a real etcd, through the real client:
the behaviours that are the API's (the fake in tests/ksrfake stands in for them elsewhere):
the initial list of every resource, changes followed by the watch, a relist after the watch's
version is compacted away (410 Gone from a real server), leader election, and a blocked API
server named by readiness."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.kvdb.etcd import EtcdBroker
from plugins.ksr import keys as ks
from plugins.ksr import model as m
from plugins.ksr.leader import LEADER_KEY
from tests.k8sapi import RealKubernetes, bin_dir
from tests.plugins.ksr import helpers as h
from tests.plugins.ksr.conftest import RunKSR

pytestmark = pytest.mark.etcd

if bin_dir() is None:
    pytest.skip("no kube-apiserver: set KUBE_BIN_DIR (.ci/run sets it when a Kubernetes release "
                "archive lies beside the clone)", allow_module_level=True)


@pytest.fixture(scope="module")
def real_api() -> Iterator[RealKubernetes]:
    kube_bin = bin_dir()
    assert kube_bin is not None
    api = RealKubernetes(kube_bin)
    try:
        api.start()
        yield api
    finally:
        api.stop()


@pytest.fixture
def k8s(real_api: RealKubernetes) -> Iterator[RealKubernetes]:
    """The module's API server with the objects of one test, removed afterwards."""
    yield real_api
    for ns in ("prod", "team"):
        real_api.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false")
    real_api.kubectl("delete", "pods,services,endpoints,endpointslices,networkpolicies", "--all", "-n", "default",
                     "--force", "--grace-period=0", "--wait=false", check=False)
    real_api.kubectl("delete", "nodes", "--all", "--wait=false")


def populate(api: RealKubernetes) -> None:
    api.apply("namespaces", h.namespace("prod"))
    for i in range(10):
        api.apply("pods", h.pod(f"web-{i}", ip=f"10.1.1.{i + 2}"))
    api.apply("services", h.service("web"))
    api.apply("endpointslices", h.endpointslice("web-abc", "web", ["10.1.1.2", "10.1.1.3"]))
    api.apply("networkpolicies", h.policy("db-access", "prod"))
    api.apply("nodes", h.node("node1"))


async def all_synced(ksr: object) -> None:
    await h.all_synced(ksr, timeout_s=30)


async def test_initial_list_and_watched_changes(k8s: RealKubernetes, broker: EtcdBroker, run_ksr: RunKSR) -> None:
    populate(k8s)
    async with run_ksr(k8s, list_page_size=4) as ksr:
        await all_synced(ksr)
        assert {ks.pod_key(f"web-{i}", "default") for i in range(10)} <= await h.ksr_keys(broker, "pod")
        pod = m.Pod.model_validate(await h.stored(broker, ks.pod_key("web-3", "default")))
        assert pod.ip_address == "10.1.1.5" and pod.ready and pod.containers[0].ports[0].container_port == 8080
        svc = m.Service.model_validate(await h.stored(broker, ks.service_key("web", "default")))
        assert svc.cluster_ips == ["10.96.0.10"] and svc.ports[0].target_port.int_val == 8080
        eps = m.EndpointSlice.model_validate(await h.stored(broker, ks.endpointslice_key("web-abc", "default")))
        assert eps.service_name == "web" and [e.addresses for e in eps.endpoints] == [["10.1.1.2"], ["10.1.1.3"]]
        pol = m.Policy.model_validate(await h.stored(broker, ks.policy_key("db-access", "prod")))
        assert pol.ingress_rules[0].from_[1].ip_block == m.IPBlock(cidr="10.0.0.0/8", except_=["10.1.0.0/16"])
        node = m.Node.model_validate(await h.stored(broker, ks.node_key("node1")))
        assert node.addresses[0] == m.NodeAddress(type="InternalIP", address="192.168.16.1")
        # Changes through the watch: add, update, terminate, delete; a namespace goes.
        k8s.apply("pods", h.pod("api-1", ns="prod", ip="10.1.1.100"))
        await h.wait_stored(broker, ks.pod_key("api-1", "prod"), lambda v: v is not None)
        k8s.apply("pods", h.pod("api-1", ns="prod", ip="10.1.1.100",
                                 metadata={"name": "api-1", "namespace": "prod", "labels": {"app": "v2"}}))
        await h.wait_stored(broker, ks.pod_key("api-1", "prod"),
                            lambda v: v is not None and v["labels"] == {"app": "v2"})
        terminating = h.pod("api-1", ns="prod", ip="10.1.1.100")
        terminating["metadata"]["deletionTimestamp"] = "now"
        k8s.apply("pods", terminating)
        await h.wait_stored(broker, ks.pod_key("api-1", "prod"), lambda v: v is not None and v["terminating"])
        k8s.delete("pods", "api-1", "prod")
        await h.wait_stored(broker, ks.pod_key("api-1", "prod"), lambda v: v is None)
        labelled = h.service("other-proxy", ip="10.96.0.11")
        labelled["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "x"}
        k8s.apply("services", labelled)
        proxy_label = {"service.kubernetes.io/service-proxy-name": "x"}
        await h.wait_stored(broker, ks.service_key("other-proxy", "default"),
                            lambda v: v is not None and v["labels"] == proxy_label)


async def test_a_compacted_watch_version_relists(k8s: RealKubernetes, broker: EtcdBroker, run_ksr: RunKSR) -> None:
    populate(k8s)
    async with run_ksr(k8s, watch_timeout_s=2) as ksr:
        await all_synced(ksr)
        assert ksr.reflectors is not None
        source = ksr.reflectors.source
        lists = {kw: f.lists for kw, f in source.followers.items()}  # type: ignore[attr-defined]
        # Other resources move the revision on; the pod watch's version is compacted away, so
        # its next watch (every 2 s) gets 410 Gone from the server and lists again.
        for i in range(3):  # several revisions: a watch from revision R may start at R + 1
            k8s.apply("namespaces", {**h.namespace("team"), "metadata": {"name": "team", "labels": {"n": str(i)}}})
        k8s.compact()
        k8s.apply("pods", h.pod("late", ip="10.1.1.200"))
        await h.wait_stored(broker, ks.pod_key("late", "default"), lambda v: v is not None)

        async def relisted() -> bool:
            return source.followers["node"].lists > lists["node"]  # type: ignore[attr-defined,no-any-return]

        await h.wait_for(relisted, 30, "the node resource listed again after 410")
        assert await h.stored(broker, ks.node_key("node1")) is not None


async def test_leader_election_only_the_leader_writes_and_the_standby_takes_over(
    k8s: RealKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    k8s.apply("nodes", h.node("node1"))
    async with run_ksr(k8s, leader_ttl_s=2, instance_id="first") as first:
        await h.wait_for(lambda: _true(first.is_leader), 20, "first elected")
        async with run_ksr(k8s, leader_ttl_s=2, instance_id="second") as second:
            await h.wait_stored(broker, ks.node_key("node1"), lambda v: v is not None)
            assert not second.is_leader and second.reflectors is None
            await first.close()
            await h.wait_for(lambda: _true(second.is_leader and second.reflectors is not None), 20,
                             "the standby elected")
            k8s.apply("nodes", h.node("node2", ip="192.168.16.2"))
            await h.wait_stored(broker, ks.node_key("node2"), lambda v: v is not None)
            held = await broker.get(LEADER_KEY)
            assert held is not None and b"second" in held.value


async def test_an_api_server_that_does_not_answer_is_named_by_readiness(
    k8s: RealKubernetes, broker: EtcdBroker, run_ksr: RunKSR, tmp_path: object
) -> None:
    from pathlib import Path

    from core.etcdserver import free_port

    assert isinstance(tmp_path, Path)
    conf = tmp_path / "dead.conf"
    port = free_port()  # nothing listens there
    conf.write_text(k8s.admin.read_text().replace(k8s.url, f"https://127.0.0.1:{port}"))
    async with run_ksr(None, kubeconfig=conf) as ksr:
        problems: list[str] = []

        async def named() -> bool:
            if ksr.reflectors is None:
                return False
            problems[:] = [ksr.reflectors.source.problem(kw) for kw in ksr.keywords]
            return all(f"127.0.0.1:{port}" in p for p in problems)

        await h.wait_for(named, 30, "every resource's problem naming the API server")
        assert not any(ksr.synced().values())


async def _true(value: bool) -> bool:
    return value
