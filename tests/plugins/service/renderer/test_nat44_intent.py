"""The processor's intent drives the VPP NAT44 renderer too (the renderer of ipnet.dataplane vpp)."""

from __future__ import annotations

from ipaddress import IPv4Network

from plugins.service.processor import service_intent
from plugins.service.renderer.nat44 import Nat44RenderSettings, Nat44ServiceRenderer
from tests.plugins.service.test_processor import NODES, READY, eps, svc


def test_one_mapping_per_frontend_and_removed_ones_reported() -> None:
    renderer = Nat44ServiceRenderer(Nat44RenderSettings(pod_network=IPv4Network("10.1.0.0/16")))
    s = svc("a", [{"name": "http", "port": 80, "nodePort": 30080}], type="NodePort")
    slices = [eps("a-1", "a", [("10.1.1.2", "node1", READY), ("10.1.2.2", "node2", READY)],
                  [{"name": "http", "port": 8080}])]
    intent = service_intent(s, slices, NODES)
    renderer.set_service(intent.key, intent)
    values = renderer.values()
    assert len(values) == 3  # ClusterIP, NodePort on node1's and on node2's address
    renderer.set_service(intent.key, None)
    assert sorted(renderer.take_removed()) == sorted(values)
