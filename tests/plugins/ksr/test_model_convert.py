"""Keys, the resource table and the Kubernetes JSON -> model conversion."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.kvdb.api import encode_model
from plugins.ksr import keys as ks
from plugins.ksr import model as m
from plugins.ksr.convert import CONVERTERS, BadObjectError, convert
from tests.plugins.ksr import helpers as h

NAMES = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True)


def test_key_layout() -> None:
    assert m.KSR_PREFIX == "/vnf-agent/contiv-ksr/"
    assert ks.pod_key("nginx-123", "default") == "k8s/pod/nginx-123/namespace/default"
    assert ks.node_key("n1") == "k8s/node/n1"
    assert ks.endpointslice_key("web-x", "prod") == "k8s/endpointslice/web-x/namespace/prod"
    assert ks.allocated_id_key(3) == "allocatedIDs/3"
    assert set(ks.RESOURCES) == {"namespace", "pod", "policy", "service", "endpoints", "endpointslice", "node"}
    for keyword, (prefix, model) in ks.RESOURCES.items():
        assert prefix == f"k8s/{keyword}/" and CONVERTERS[keyword] is not None and model is not None
    with pytest.raises(ValueError, match="needs a name and a namespace"):
        ks.pod_key("x", "")
    with pytest.raises(ValueError, match="unknown KSR resource"):
        ks.object_key("deployment", "x", "y")
    with pytest.raises(ValueError, match="malformed"):
        ks.parse_key("k8s/pod/x/ns/y")


@given(keyword=st.sampled_from(sorted(ks.RESOURCES)), name=NAMES, namespace=NAMES)
def test_keys_round_trip(keyword: str, name: str, namespace: str) -> None:
    ns = namespace if keyword in ks.NAMESPACED else ""
    key = ks.object_key(keyword, name, ns)
    assert key.startswith(ks.RESOURCES[keyword][0])
    assert ks.parse_key(key) == (keyword, name, ns)


SAMPLES: dict[str, dict[str, Any]] = {
    "namespace": h.namespace("prod"),
    "pod": h.pod("web-1", ns="prod"),
    "service": h.service("web", ns="prod"),
    "endpoints": h.endpoints("web", ["10.1.1.2"], ns="prod"),
    "endpointslice": h.endpointslice("web-x", "web", ["10.1.1.2"], ns="prod"),
    "policy": h.policy("p", ns="prod"),
    "node": h.node("n1"),
}


@pytest.mark.parametrize("keyword", sorted(SAMPLES))
def test_conversion_round_trips_through_json(keyword: str) -> None:
    key, value = convert(keyword, SAMPLES[keyword])
    model = ks.RESOURCES[keyword][1]
    assert model.model_validate_json(encode_model(value)) == value
    assert ks.parse_key(key)[0] == keyword == ks.keyword_of(key)
    assert ks.decode_value(keyword, encode_model(value)) == value


def test_pod_fields() -> None:
    obj = h.pod("web-1", ip="10.1.1.5")
    obj["status"]["podIPs"].append({"ip": "fd00::5"})
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    obj["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    _, pod = convert("pod", obj)
    assert isinstance(pod, m.Pod)
    assert pod.ip_addresses == ["10.1.1.5", "fd00::5"] and pod.host_ip_address == "192.168.16.1"
    assert pod.terminating and not pod.ready and pod.node_name == "node1"
    assert pod.annotations == {"contivpp.io/custom-if": "memif1/memif"}
    assert pod.labels == {"app": "web"}


def test_pod_annotation_prefixes_are_configurable() -> None:
    obj = h.pod("web-1")
    obj["metadata"]["annotations"]["tuning.example.com/mtu"] = "1400"
    _, only_contiv = convert("pod", obj)
    _, with_tuning = convert("pod", obj, ("contivpp.io", "tuning.example.com"))
    _, everything = convert("pod", obj, ("",))
    assert isinstance(only_contiv, m.Pod) and isinstance(with_tuning, m.Pod) and isinstance(everything, m.Pod)
    assert only_contiv.annotations == {"contivpp.io/custom-if": "memif1/memif"}
    assert with_tuning.annotations == {"contivpp.io/custom-if": "memif1/memif", "tuning.example.com/mtu": "1400"}
    assert everything.annotations == obj["metadata"]["annotations"]


def test_service_fields_and_target_port_kinds() -> None:
    obj = h.service("web")
    obj["spec"].update({
        "type": "LoadBalancer", "externalIPs": ["1.2.3.4"], "externalTrafficPolicy": "Local",
        "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
        "ipFamilies": ["IPv4", "IPv6"], "clusterIPs": ["10.96.0.10", "fd00:96::10"],
    })
    obj["spec"]["ports"].append({"name": "named", "port": 81, "targetPort": "metrics", "nodePort": 30081})
    obj["spec"]["ports"].append({"port": 82})
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}}
    _, svc = convert("service", obj)
    assert isinstance(svc, m.Service)
    assert svc.service_type == "LoadBalancer" and svc.external_ips == ["1.2.3.4"]
    assert svc.session_affinity_timeout == 600 and svc.lb_ingress_ips == ["5.6.7.8"]
    assert svc.cluster_ips == ["10.96.0.10", "fd00:96::10"] and svc.ip_families == ["IPv4", "IPv6"]
    assert svc.ports[1].target_port == m.TargetPort(type=m.TargetPortType.STRING, string_val="metrics")
    assert svc.ports[1].node_port == 30081
    assert svc.ports[2].target_port.int_val == 82  # absent targetPort = port


def test_policy_types_and_endpointslice_conditions() -> None:
    obj = h.policy("p")
    obj["spec"]["policyTypes"] = []
    _, pol = convert("policy", obj)
    assert isinstance(pol, m.Policy) and pol.policy_type is m.PolicyType.DEFAULT
    obj["spec"]["policyTypes"] = ["Egress", "Ingress"]
    obj["spec"]["egress"] = [{"to": [{"namespaceSelector": {"matchExpressions": [
        {"key": "team", "operator": "In", "values": ["a"]}]}}], "ports": [{"port": "dns", "protocol": "UDP"}]}]
    _, pol = convert("policy", obj)
    assert isinstance(pol, m.Policy) and pol.policy_type is m.PolicyType.INGRESS_AND_EGRESS
    rule = pol.egress_rules[0]
    assert rule.ports[0].port == m.PortRef(type=m.PortRefType.NAME, name="dns")
    assert rule.to[0].namespaces is not None
    assert rule.to[0].namespaces.match_expressions[0].operator is m.SelectorOperator.IN
    eps = h.endpointslice("s", "web", ["10.1.1.2", "10.1.1.3"])
    eps["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    eps["endpoints"][1]["conditions"] = {}
    _, sl = convert("endpointslice", eps)
    assert isinstance(sl, m.EndpointSlice)
    assert (sl.endpoints[0].ready, sl.endpoints[0].serving, sl.endpoints[0].terminating) == (False, True, True)
    assert (sl.endpoints[1].ready, sl.endpoints[1].serving) == (True, True)  # nil means ready


@pytest.mark.parametrize(
    ("keyword", "path", "bad_value", "message"),
    [
        ("pod", ("metadata", "name"), None, "metadata.name is missing"),
        ("pod", ("spec", "containers"), "nope", "spec.containers must be a list"),
        ("pod", ("status", "podIPs"), [{"address": "x"}], "KeyError"),
        ("service", ("spec", "ports"), [{"port": 80, "protocol": "ICMP"}], "protocol"),
        ("service", ("spec", "ports"), [{"port": 80, "targetPort": 1.5}], "targetPort"),
        ("policy", ("spec", "policyTypes"), ["Sideways"], "policyTypes"),
        ("endpointslice", ("addressType",), "IPX", "addressType"),
        ("node", ("status", "addresses"), [{"address": "1.2.3.4"}], "addresses[].type is missing"),
        ("namespace", ("metadata", "labels"), ["a"], "metadata.labels must be an object"),
    ],
)
def test_bad_objects_name_the_field(
    keyword: str, path: tuple[str, ...], bad_value: object, message: str
) -> None:
    obj = copy.deepcopy(SAMPLES[keyword])
    target = obj
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = bad_value
    with pytest.raises(BadObjectError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        convert(keyword, obj)
    with pytest.raises(BadObjectError, match="must be a mapping"):
        convert(keyword, ["not", "an", "object"])  # type: ignore[arg-type]
