"""The cluster of the upstream netpol e2e suite and the policy cases run against it.

Namespaces x, y, z (``ns=<name>``), pods a, b, c in each (``pod=<name>``), every pod serving TCP
and UDP on 80 and 81 (ports named ``serve-<port>-<proto>``). A case is a function of the pods'
addresses (ipBlock cases need them) returning the NetworkPolicy manifests to apply.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
PORTS = (80, 81)
PROTOCOLS = ("tcp", "udp")

Obj = dict[str, Any]
Case = Callable[[Mapping[str, str]], list[Obj]]


def container_ports() -> list[Obj]:
    return [{"name": f"serve-{port}-{proto}", "containerPort": port, "protocol": proto.upper()}
            for port in PORTS for proto in PROTOCOLS]


def namespace_manifest(name: str, extra: Mapping[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"ns": name, **(extra or {})}}}


def pod_manifest(ns: str, name: str, labels: Mapping[str, str] | None = None,
                 node: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "serve", "image": "lab/echo", "ports": container_ports()}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels or {"pod": name})},
            "spec": spec}


def policy(ns: str, name: str, pod_selector: Obj | None = None, *, types: list[str] | None = None,
           ingress: list[Obj] | None = None, egress: list[Obj] | None = None) -> Obj:
    spec: Obj = {"podSelector": pod_selector or {}}
    if types is not None:
        spec["policyTypes"] = types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def pod_sel(name: str) -> Obj:
    return {"matchLabels": {"pod": name}}


def ns_sel(name: str) -> Obj:
    return {"matchLabels": {"ns": name}}


CASES: dict[str, Case] = {
    "deny-ingress": lambda ips: [policy("x", "deny-in", types=["Ingress"])],
    "deny-egress": lambda ips: [policy("x", "deny-out", types=["Egress"])],
    "deny-both": lambda ips: [policy("x", "deny-all", types=["Ingress", "Egress"])],
    "allow-all-after-deny": lambda ips: [
        policy("x", "deny-in", types=["Ingress"]),
        policy("x", "allow-all", ingress=[{}]),
    ],
    "from-pod-selector": lambda ips: [
        policy("x", "a-from-b", pod_sel("a"), ingress=[{"from": [{"podSelector": pod_sel("b")}]}]),
    ],
    "from-namespace-in": lambda ips: [
        policy("x", "a-from-y", pod_sel("a"), ingress=[{"from": [{"namespaceSelector": {
            "matchExpressions": [{"key": "ns", "operator": "In", "values": ["y"]}]}}]}]),
    ],
    "from-namespace-notin": lambda ips: [
        policy("x", "a-not-from-y", pod_sel("a"), ingress=[{"from": [{"namespaceSelector": {
            "matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["y"]}]}}]}]),
    ],
    "pod-and-namespace": lambda ips: [
        policy("x", "a-from-yc", pod_sel("a"), ingress=[{"from": [
            {"namespaceSelector": ns_sel("y"), "podSelector": pod_sel("c")}]}]),
    ],
    "pod-or-namespace": lambda ips: [
        policy("x", "a-from-y-or-c", pod_sel("a"), ingress=[{"from": [
            {"namespaceSelector": ns_sel("y")}, {"podSelector": pod_sel("c")}]}]),
    ],
    "named-port": lambda ips: [
        policy("x", "a-81-tcp", pod_sel("a"), ingress=[{"ports": [{"port": "serve-81-tcp"}]}]),
    ],
    "port-range": lambda ips: [
        policy("x", "all-80-81-tcp", ingress=[{"ports": [{"protocol": "TCP", "port": 80, "endPort": 81}]}]),
    ],
    "udp-only": lambda ips: [
        policy("x", "udp-80", ingress=[{"ports": [{"protocol": "UDP", "port": 80}]}]),
    ],
    "egress-ipblock": lambda ips: [
        policy("x", "a-to-ya", pod_sel("a"), types=["Egress"],
               egress=[{"to": [{"ipBlock": {"cidr": f"{ips['y/a']}/32"}}]}]),
    ],
    "egress-ipblock-except": lambda ips: [
        policy("x", "a-to-net-but-ya", pod_sel("a"), types=["Egress"],
               egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"{ips['y/a']}/32"]}}]}]),
    ],
    "ingress-and-egress": lambda ips: [
        policy("x", "both", pod_sel("a"), types=["Ingress", "Egress"],
               ingress=[{"from": [{"namespaceSelector": ns_sel("y")}]}],
               egress=[{"to": [{"namespaceSelector": ns_sel("z")}], "ports": [{"port": 80, "protocol": "UDP"}]}]),
    ],
    "union": lambda ips: [
        policy("x", "from-b", pod_sel("a"), ingress=[{"from": [{"podSelector": pod_sel("b")}]}]),
        policy("x", "from-z-81", pod_sel("a"), ingress=[{"from": [{"namespaceSelector": ns_sel("z")}],
                                                         "ports": [{"port": 81}]}]),
    ],
    "egress-deny-beats-ingress-allow": lambda ips: [
        policy("x", "no-egress", pod_sel("a"), types=["Egress"]),
        policy("y", "allow-from-all", ingress=[{}]),
    ],
    "default-types-with-egress": lambda ips: [
        policy("y", "b-default", pod_sel("b"), egress=[{"to": [{"podSelector": {}}]}]),
    ],
    "egress-named-port": lambda ips: [
        policy("z", "to-81-udp", types=["Egress"], egress=[{"ports": [{"port": "serve-81-udp", "protocol": "UDP"}]}]),
    ],
    "match-expressions": lambda ips: [
        policy("y", "exists", {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "b"]}]},
               ingress=[{"from": [{"podSelector": {"matchExpressions": [
                   {"key": "pod", "operator": "NotIn", "values": ["c"]}]},
                   "namespaceSelector": {"matchExpressions": [
                       {"key": "ns", "operator": "Exists"}]}}]}]),
    ],
    "metadata-name": lambda ips: [
        policy("z", "from-x", ingress=[{"from": [{"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "x"}}}]}]),
    ],
}


def random_policies(seed: int, ips: Mapping[str, str], count: int = 3) -> list[Obj]:
    """A few random policies from the building blocks above (fixed ``seed``: reproducible)."""
    rng = random.Random(seed)

    def selector() -> Obj:
        kind = rng.choice(["empty", "label", "in", "notin", "exists"])
        if kind == "empty":
            return {}
        if kind == "label":
            return pod_sel(rng.choice(PODS))
        if kind == "exists":
            return {"matchExpressions": [{"key": "pod", "operator": rng.choice(["Exists", "DoesNotExist"])}]}
        op = "In" if kind == "in" else "NotIn"
        return {"matchExpressions": [{"key": "pod", "operator": op,
                                      "values": rng.sample(PODS, rng.randint(1, 2))}]}

    def peer() -> Obj:
        kind = rng.choice(["pod", "ns", "both", "block"])
        if kind == "pod":
            return {"podSelector": selector()}
        if kind == "ns":
            return {"namespaceSelector": rng.choice([{}, ns_sel(rng.choice(NAMESPACES))])}
        if kind == "both":
            return {"podSelector": selector(), "namespaceSelector": ns_sel(rng.choice(NAMESPACES))}
        target = ips[f"{rng.choice(NAMESPACES)}/{rng.choice(PODS)}"]
        if rng.random() < 0.5:
            return {"ipBlock": {"cidr": f"{target}/32"}}
        return {"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"{target}/32"]}}

    def ports() -> list[Obj]:
        out: list[Obj] = []
        for _ in range(rng.randint(0, 2)):
            proto = rng.choice(["TCP", "UDP"])
            form = rng.choice(["number", "name", "range", "none"])
            if form == "number":
                out.append({"protocol": proto, "port": rng.choice(PORTS)})
            elif form == "name":
                out.append({"protocol": proto, "port": f"serve-{rng.choice(PORTS)}-{proto.lower()}"})
            elif form == "range":
                out.append({"protocol": proto, "port": 80, "endPort": 81})
            else:
                out.append({"protocol": proto})
        return out

    def rules(n: int, peer_field: str) -> list[Obj]:
        out = []
        for _ in range(n):
            rule: Obj = {}
            if rng.random() < 0.8:
                rule[peer_field] = [peer() for _ in range(rng.randint(1, 2))]
            p = ports()
            if p:
                rule["ports"] = p
            out.append(rule)
        return out

    result = []
    for i in range(count):
        types = rng.choice([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]])
        result.append(policy(rng.choice(NAMESPACES), f"rnd-{seed}-{i}", selector(), types=types,
                             ingress=rules(rng.randint(0, 2), "from"),
                             egress=rules(rng.randint(0, 2), "to")))
    return result
