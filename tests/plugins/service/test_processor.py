"""The processor's Kubernetes semantics, on the models KSR reflects (converted from manifests)."""

from __future__ import annotations

from typing import Any

from plugins.ksr import convert
from plugins.ksr.model import EndpointSlice, Service
from plugins.service.intent import FrontendKind
from plugins.service.processor import NodeAddresses, ServiceProcessor, node_addresses, service_intent

NODES = NodeAddresses("node1", own=("192.168.16.1",), others=("192.168.16.2",))


def svc(name: str, ports: list[dict[str, Any]], **spec: Any) -> Service:
    return convert.service({"metadata": {"name": name, "namespace": "ns"},
                            "spec": {"clusterIP": spec.pop("clusterIP", "10.96.0.10"), "ports": ports, **spec}})


def eps(name: str, service: str, endpoints: list[tuple[str, str, dict[str, bool]]],
        ports: list[dict[str, Any]]) -> EndpointSlice:
    return convert.endpointslice({
        "metadata": {"name": name, "namespace": "ns", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": ports,
        "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": cond,
                       "targetRef": {"kind": "Pod", "namespace": "ns", "name": f"p-{ip}"}}
                      for ip, node, cond in endpoints]})


READY: dict[str, bool] = {"ready": True}
GOING: dict[str, bool] = {"ready": False, "serving": True, "terminating": True}


def test_frontends_of_every_kind_and_protocol() -> None:
    s = svc("a", [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "sc", "port": 9, "protocol": "SCTP"}],
            type="LoadBalancer", externalIPs=["203.0.113.5"], externalTrafficPolicy="Local")
    s = s.model_copy(update={"lb_ingress_ips": ["198.51.100.7"]})
    intent = service_intent(s, [], NODES)
    http = intent.ports[0]
    kinds = {(f.kind, f.ip, f.port, f.local_only, f.masquerade) for f in http.frontends}
    assert kinds == {
        (FrontendKind.CLUSTER_IP, "10.96.0.10", 80, False, False),
        (FrontendKind.EXTERNAL_IP, "203.0.113.5", 80, True, False),
        (FrontendKind.LOAD_BALANCER, "198.51.100.7", 80, True, False),
        (FrontendKind.NODE_PORT, "192.168.16.1", 30080, True, False),  # own address: ETP Local
    }  # (none on another node's address: see the next test)
    assert [p.protocol for p in intent.ports] == ["tcp", "udp", "sctp"]
    assert service_intent(svc("h", [{"port": 80}], clusterIP="None"), [], NODES).skipped.startswith("headless")
    assert service_intent(svc("x", [], type="ExternalName"), [], NODES).skipped == "ExternalName service"


def test_a_nodeport_addressed_to_another_node_is_answered_here_only_when_that_cannot_change_the_answer() -> None:
    """externalTrafficPolicy Local: only the addressed node's backends may answer, so a
    connection from this node to node2:30081 must reach node2 (issue 23, item 11: it was
    translated here, to any backend). Cluster: any backend may answer either way."""
    ports = [{"name": "http", "port": 80, "nodePort": 30081}]
    local = service_intent(svc("l", ports, type="NodePort", externalTrafficPolicy="Local"), [], NODES)
    assert {(f.ip, f.local_only) for f in local.ports[0].frontends if f.kind is FrontendKind.NODE_PORT} == {
        ("192.168.16.1", True)}
    cluster = service_intent(svc("c", ports, type="NodePort"), [], NODES)
    assert {(f.ip, f.local_only, f.masquerade) for f in cluster.ports[0].frontends
            if f.kind is FrontendKind.NODE_PORT} == {("192.168.16.1", False, True), ("192.168.16.2", False, False)}


def test_services_labelled_headless_or_for_another_proxy_are_left_alone() -> None:
    """kube-proxy skips services labelled service.kubernetes.io/headless or .../service-proxy-name;
    a replacement for it must too (the upstream e2e specs create both)."""
    def labelled(labels: dict[str, str]) -> Service:
        return convert.service({"metadata": {"name": "l", "namespace": "ns", "labels": labels},
                                "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}})

    backends = [eps("l-1", "l", [("10.1.1.2", "node1", READY)], [{"port": 80}])]
    plain = service_intent(labelled({"app": "x"}), backends, NODES)
    assert not plain.skipped and plain.ports[0].frontends
    headless = service_intent(labelled({"service.kubernetes.io/headless": ""}), backends, NODES)
    assert headless.ports == () and "service.kubernetes.io/headless" in headless.skipped
    other = service_intent(labelled({"service.kubernetes.io/service-proxy-name": "foo-bar"}), backends, NODES)
    assert other.ports == () and "service-proxy-name=foo-bar" in other.skipped


def test_backends_ready_terminating_fallback_named_ports_several_slices() -> None:
    s = svc("a", [{"name": "web", "port": 80, "targetPort": "web"}], internalTrafficPolicy="Local",
            sessionAffinity="ClientIP")
    slices = [eps("a-1", "a", [("10.1.1.2", "node1", READY), ("10.1.1.3", "node1", GOING)],
                  [{"name": "web", "port": 8080}]),
              eps("a-2", "a", [("10.1.2.2", "node2", READY)], [{"name": "web", "port": 9090}])]
    port = service_intent(s, slices, NODES).ports[0]
    assert [(b.ip, b.port, b.local) for b in port.backends] == [("10.1.1.2", 8080, True), ("10.1.2.2", 9090, False)]
    assert [b.ip for b in port.local_backends] == ["10.1.1.2"]
    assert port.frontends[0].local_only and port.affinity_timeout_s == 10800
    # No ready endpoint left: the serving+terminating ones take over (KEP-1669).
    slices[0] = eps("a-1", "a", [("10.1.1.3", "node1", GOING)], [{"name": "web", "port": 8080}])
    slices[1] = eps("a-2", "a", [], [{"name": "web", "port": 9090}])
    port = service_intent(s, slices, NODES).ports[0]
    assert [(b.ip, b.terminating) for b in port.backends] == [("10.1.1.3", True)]


def test_bad_input_clashes_and_unknown_slices_lose_nothing_else() -> None:
    proc = ServiceProcessor(NODES)
    good = svc("good", [{"port": 80}])
    bad = svc("bad", [{"port": 80}], clusterIP="10.96.0.11").model_copy(
        update={"ports": [svc("t", [{"port": 80}]).ports[0].model_copy(update={"port": 70000})]})
    clash = svc("zclash", [{"port": 80}, {"name": "b", "port": 81}])  # same ClusterIP as good
    orphan = eps("o-1", "nobody", [("10.1.1.9", "node1", READY)], [{"name": "", "port": 80}])
    proc.resync([good, bad, clash], [orphan, eps("g-1", "good", [("10.1.1.2", "node1", READY)],
                                                  [{"name": "", "port": 8080}])], NODES)
    assert "70000" in proc.errors["ns/bad"] and proc.intents["ns/bad"].skipped
    assert "clash" in proc.errors["ns/zclash"]
    assert [f.port for p in proc.intents["ns/zclash"].ports for f in p.frontends] == [81]
    assert [b.ip for b in proc.intents["ns/good"].ports[0].backends] == ["10.1.1.2"]
    assert "ns/nobody" not in proc.intents
    # The clash goes when the owner goes: the other service gets the frontend.
    assert proc.set_service(None, good) == {"ns/good", "ns/zclash"}
    assert "ns/zclash" not in proc.errors
    assert sorted(f.port for p in proc.intents["ns/zclash"].ports for f in p.frontends) == [80, 81]
    # A slice that moves to another service updates both.
    moved = eps("g-1", "zclash", [("10.1.1.2", "node1", READY)], [{"name": "", "port": 8080}])
    assert proc.set_slice(moved, eps("g-1", "good", [], [])) == {"ns/zclash"}


def test_node_addresses() -> None:
    nodes = node_addresses("n1", {"n1": (["192.168.16.1"], ["10.0.0.1/24", "fe80::1"]),
                                  "n2": (["192.168.16.2"], ["bogus"])})
    assert nodes == NodeAddresses("n1", ("192.168.16.1", "10.0.0.1"), ("192.168.16.2",))
