"""The NAT44 service renderer: the mappings Contiv's renderer produced, applied to the stand-in."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.models import Route, value_key
from plugins.linux.nft.table import NftTableValue
from plugins.service.renderer.nat44 import Nat44RenderSettings, Nat44ServiceRenderer
from plugins.service.renderer.vpphost import HostSide
from plugins.vpp import model as m
from plugins.vpp import nat as n
from tests.vppreal.services import Backend, Frontend, Port, Service, service
from tests.vppstub import VPPStub

NODE_IPS = ("192.168.16.1", "192.168.16.2")
BACKENDS = [("10.1.1.2", 8080, "node1"), ("10.1.2.2", 8080, "node2"), ("192.168.16.2", 9090, "node2")]


def renderer() -> Nat44ServiceRenderer:
    return Nat44ServiceRenderer(Nat44RenderSettings(pod_network=IPv4Network("10.1.0.0/16"), local_weight=3))


def key(ip: str, proto: str, port: int) -> str:
    return n.nat_mapping_key(ip, proto, port)


def locals_(*items: tuple[str, int, int, int]) -> tuple[n.NatLocal, ...]:
    return tuple(n.NatLocal(ip=IPv4Address(ip), port=p, probability=w, vrf=v) for ip, p, w, v in items)


def test_one_mapping_per_frontend_with_weights_vrfs_and_twice_nat() -> None:
    r = renderer()
    web = service("web", "10.96.0.10", 80, BACKENDS, me="node1", node_ips=NODE_IPS, node_port=30080,
                  affinity=10800, external_ips=("203.0.113.7",))
    r.set_service(web.key, web)
    values = r.values()
    assert sorted(values) == sorted([key("10.96.0.10", "tcp", 80), key("203.0.113.7", "tcp", 80),
                                     key("192.168.16.1", "tcp", 30080), key("192.168.16.2", "tcp", 30080)])
    cluster = values[key("10.96.0.10", "tcp", 80)]
    assert isinstance(cluster, n.Nat44Mapping)
    # local pod weighs 3, remote pod 1 in the pod VRF; a host-network backend in the main VRF
    assert cluster.locals == locals_(("10.1.1.2", 8080, 3, 1), ("10.1.2.2", 8080, 1, 1), ("192.168.16.2", 9090, 1, 0))
    assert (cluster.twice_nat, cluster.affinity, cluster.label, cluster.out2in_only) == (
        n.TwiceNat.SELF, 10800, "default/web", True)
    external = values[key("203.0.113.7", "tcp", 80)]
    assert isinstance(external, n.Nat44Mapping) and external.twice_nat is n.TwiceNat.ENABLED


def test_local_traffic_policy_single_backend_sctp_and_empty() -> None:
    r = renderer()
    local = service("local", "10.96.0.11", 80, BACKENDS, me="node1", node_ips=NODE_IPS, node_port=30081,
                    local=True, external_ips=("203.0.113.8",), affinity=60)
    r.set_service(local.key, local)
    nodeport = r.values()[key("192.168.16.1", "tcp", 30081)]
    assert isinstance(nodeport, n.Nat44Mapping)
    # only the local backend, as a plain static mapping (no weight, no affinity); no full twice-NAT
    assert nodeport.locals == locals_(("10.1.1.2", 8080, 0, 1))
    assert (nodeport.affinity, nodeport.twice_nat) == (0, n.TwiceNat.SELF)
    ext = r.values()[key("203.0.113.8", "tcp", 80)]
    assert isinstance(ext, n.Nat44Mapping) and ext.twice_nat is n.TwiceNat.SELF  # local: client IP kept
    sctp = Service("default", "sctp", (Port("s", "sctp", (Frontend("10.96.0.12", "sctp", 9),),
                                            (Backend("10.1.1.2", 9, "node1", True),)),))
    empty = Service("default", "empty", (Port("e", "tcp", (Frontend("10.96.0.13", "tcp", 80),)),))
    for svc in (sctp, empty):
        r.set_service(svc.key, svc)
    assert not any("10.96.0.12" in k or "10.96.0.13" in k for k in r.values())


def test_a_change_touches_only_its_mappings_and_removal_is_reported() -> None:
    r = renderer()
    a = service("a", "10.96.0.20", 80, BACKENDS[:2], me="node1")
    b = service("b", "10.96.0.21", 80, BACKENDS[:2], me="node1", node_ips=NODE_IPS, node_port=30090)
    for svc in (a, b):
        r.set_service(svc.key, svc)
    before = dict(r.values())
    r.set_service(a.key, service("a", "10.96.0.20", 80, BACKENDS[:1], me="node1"))
    after = dict(r.values())
    assert {k for k in after if after[k] != before.get(k)} == {key("10.96.0.20", "tcp", 80)}
    assert r.take_removed() == []
    r.set_service(b.key, None)
    assert r.take_removed() == sorted([key("10.96.0.21", "tcp", 80), key("192.168.16.1", "tcp", 30090),
                                      key("192.168.16.2", "tcp", 30090)])
    assert r.take_removed() == []


async def test_rendered_mappings_apply_to_the_stand_in(scheduler: KVScheduler, stub: VPPStub) -> None:
    r = renderer()
    web = service("web", "10.96.0.10", 80, BACKENDS[:2], me="node1", node_ips=NODE_IPS, node_port=30080,
                  protocols=("tcp", "udp"), affinity=30)
    r.set_service(web.key, web)
    values = {m.vrf_key(1): m.VrfTable(id=1, label="pod"), n.GLOBAL_KEY: n.Nat44Global(), **r.values()}
    result = await scheduler.commit(values)
    assert result.ok, result.errors
    assert stub.state.nat is not None
    lbs = {(k[0], k[1], k[2]): [x["addr"] for x in v["locals"]] for k, v in stub.state.nat.lb.items()}
    assert lbs[("10.96.0.10", 80, 6)] == lbs[("10.96.0.10", 80, 17)] == ["10.1.1.2", "10.1.2.2"]
    assert len(lbs) == 6 and all(v["tag"] == "cv:default/web" for v in stub.state.nat.lb.values())


def test_the_node_itself_reaches_services_through_vpp() -> None:
    """Host side: the service network and ExternalIPs routed into VPP, the NodePorts DNATed to
    VPP's interconnect address (where a host frontend mapping copies the own NodePort's)."""
    host = HostSide(namespace="node", ifname="vpp1", vswitch=IPv4Interface("172.30.1.1/24"),
                    host=IPv4Interface("172.30.1.2/24"), service_network=IPv4Network("10.96.0.0/12"),
                    table_name="contiv-svc")
    r = Nat44ServiceRenderer(Nat44RenderSettings(pod_network=IPv4Network("10.1.0.0/16")), host=host)
    web = service("web", "10.96.0.10", 80, BACKENDS[:2], me="node1", node_ips=NODE_IPS, node_port=30080,
                  external_ips=("203.0.113.7",), affinity=60)
    local = service("local", "10.96.0.11", 80, BACKENDS[:2], me="node1", node_ips=NODE_IPS, node_port=30081,
                    local=True)
    for svc in (web, local):
        r.set_service(svc.key, svc)
    values = r.values()
    routes = sorted((str(v.dst), str(v.gateway), v.dev, v.namespace) for v in values.values() if isinstance(v, Route))
    assert routes == [("10.96.0.0/12", "172.30.1.1", "vpp1", "node"), ("203.0.113.7/32", "172.30.1.1", "vpp1", "node")]
    own, hosted = values[key("192.168.16.1", "tcp", 30080)], values[key("172.30.1.1", "tcp", 30080)]
    assert isinstance(own, n.Nat44Mapping) and isinstance(hosted, n.Nat44Mapping)
    assert hosted.model_copy(update={"external_ip": own.external_ip}) == own  # same backends, weights, affinity
    hosted_local = values[key("172.30.1.1", "tcp", 30081)]
    assert isinstance(hosted_local, n.Nat44Mapping) and hosted_local.locals == locals_(("10.1.1.2", 8080, 0, 1))
    table = values[host.table_key()]
    assert isinstance(table, NftTableValue)
    elements = sorted(e[1] for group in table.elements.values() for e in group)
    # the other node's NodePort of the Local service is that node's business: not captured here
    assert elements == ["192.168.16.1 . tcp . 30080", "192.168.16.1 . tcp . 30081", "192.168.16.2 . tcp . 30080"]
    assert table.chains["out"].rules == (
        "ip daddr . meta l4proto . th dport @np meta mark set meta mark | 0x4000 dnat ip to 172.30.1.1",)
    r.set_service(web.key, None)
    assert sorted(r.take_removed()) == sorted(
        [key("10.96.0.10", "tcp", 80), key("203.0.113.7", "tcp", 80), key("192.168.16.1", "tcp", 30080),
         key("192.168.16.2", "tcp", 30080), key("172.30.1.1", "tcp", 30080), value_key(Route(
             namespace="node", dst=IPv4Network("203.0.113.7/32"), gateway=IPv4Address("172.30.1.1"), dev="vpp1"))])
