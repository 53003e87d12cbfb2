"""The cnat service renderer: one translation per frontend, IPv4 or IPv6, applied to the stand-in
(tests/plugins/vpp/test_real_cnat.py applies them to the real VPP)."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network, ip_address

import pytest
from pydantic import ValidationError

from plugins.kvscheduler.scheduler import KVScheduler
from plugins.service.renderer.cnat import CnatServiceRenderer
from plugins.service.renderer.vpphost import HostSide
from plugins.vpp.cnat import CnatBackend, CnatTranslation, cnat_translation_key
from tests.vppreal.services import Backend, Frontend, Port, Service, service
from tests.vppstub import VPPStub

NODE_IPS = ("192.168.16.1", "192.168.16.2")
BACKENDS = [("10.1.1.2", 8080, "node1"), ("10.1.2.2", 8080, "node2")]


def key(ip: str, proto: str, port: int) -> str:
    return cnat_translation_key(ip, proto, port)


def backends(*items: tuple[str, int]) -> tuple[CnatBackend, ...]:
    return tuple(CnatBackend(ip=ip_address(ip), port=port) for ip, port in items)


def test_frontends_policies_affinity_and_the_host_frontend() -> None:
    host = HostSide(namespace="", ifname="vpp1", vswitch=IPv4Interface("172.30.1.1/24"),
                    host=IPv4Interface("172.30.1.2/24"), service_network=IPv4Network("10.96.0.0/12"),
                    table_name="contiv-svc")
    r = CnatServiceRenderer(host=host)
    web = service("web", "10.96.0.10", 80, BACKENDS, me="node1", node_ips=NODE_IPS, node_port=30080,
                  external_ips=("203.0.113.7",), affinity=60)
    local = service("local", "10.96.0.11", 80, BACKENDS, me="node1", node_ips=NODE_IPS, node_port=30081, local=True)
    for svc in (web, local):
        r.set_service(svc.key, svc)
    values = r.values()
    cluster = values[key("10.96.0.10", "tcp", 80)]
    assert isinstance(cluster, CnatTranslation)
    assert cluster.backends == backends(("10.1.1.2", 8080), ("10.1.2.2", 8080))
    assert cluster.affinity and cluster.label == "default/web"
    for ip in ("203.0.113.7", "192.168.16.1", "192.168.16.2", "172.30.1.1"):  # ExternalIP, NodePorts, host
        assert isinstance(values[key(ip, "tcp", 30080 if ip != "203.0.113.7" else 80)], CnatTranslation)
    own = values[key("192.168.16.1", "tcp", 30081)]
    assert isinstance(own, CnatTranslation) and own.backends == backends(("10.1.1.2", 8080))  # Local
    assert key("192.168.16.2", "tcp", 30081) not in values  # another node's Local NodePort: that node's
    hosted = values[key("172.30.1.1", "tcp", 30081)]
    assert isinstance(hosted, CnatTranslation) and hosted.backends == own.backends
    r.set_service(local.key, None)
    assert sorted(r.take_removed()) == sorted([key("10.96.0.11", "tcp", 80), key("192.168.16.1", "tcp", 30081),
                                               key("172.30.1.1", "tcp", 30081)])


def test_ipv6_frontends_get_their_own_family_sctp_and_empty_get_nothing() -> None:
    r = CnatServiceRenderer()
    dual = Service("default", "dual", (Port("http", "tcp", (
        Frontend("fd00:96::10", "tcp", 80), Frontend("10.96.0.20", "tcp", 80)),
        (Backend("fd00:1:1::2", 8080, "node1", True), Backend("10.1.1.2", 8080, "node1", True))),))
    sctp = Service("default", "sctp", (Port("s", "sctp", (Frontend("10.96.0.12", "sctp", 9),),
                                            (Backend("10.1.1.2", 9, "node1", True),)),))
    v6only = Service("default", "v6only", (Port("h", "tcp", (Frontend("10.96.0.13", "tcp", 80),),
                                                (Backend("fd00:1:1::3", 80, "node1", True),)),))
    for svc in (dual, sctp, v6only):
        r.set_service(svc.key, svc)
    values = r.values()
    assert sorted(values) == sorted([key("fd00:96::10", "tcp", 80), key("10.96.0.20", "tcp", 80)])
    six = values[key("fd00:96::10", "tcp", 80)]
    assert isinstance(six, CnatTranslation) and six.backends == backends(("fd00:1:1::2", 8080))
    with pytest.raises(ValidationError, match=r"backends of another IP family: 10\.1\.1\.2"):
        CnatTranslation(vip=ip_address("fd00:96::10"), protocol="tcp", port=80, backends=backends(("10.1.1.2", 80)))


async def test_translations_apply_to_the_stand_in_and_change_in_place(scheduler: KVScheduler, stub: VPPStub) -> None:
    r = CnatServiceRenderer()
    web = service("web", "10.96.0.10", 80, BACKENDS, me="node1", protocols=("tcp", "udp"))
    r.set_service(web.key, web)
    result = await scheduler.commit(dict(r.values()))
    assert result.ok, result.errors
    ids = {v["key"]: i for i, v in stub.state.cnat.items()}
    assert sorted(ids) == [("10.96.0.10", 80, 6), ("10.96.0.10", 80, 17)]
    r.set_service(web.key, service("web", "10.96.0.10", 80, BACKENDS[:1], me="node1", protocols=("tcp", "udp")))
    result = await scheduler.commit(dict(r.values()))
    assert result.ok, result.errors
    assert {v["key"]: i for i, v in stub.state.cnat.items()} == ids  # updated in place: same ids
    assert all(len(v["translation"]["paths"]) == 1 for v in stub.state.cnat.values())
    r.set_service(web.key, None)
    result = await scheduler.commit(dict.fromkeys(r.take_removed()))
    assert result.ok, result.errors
    assert stub.state.cnat == {}
