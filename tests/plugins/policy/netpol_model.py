"""An independent model of NetworkPolicy semantics, written from the Kubernetes API reference
(networking.k8s.io/v1 NetworkPolicySpec) and the concepts page, NOT from the plugin's code.

It works on plain manifests (dicts) and answers one question: may a NEW connection from pod
``src`` to pod ``dst`` on ``protocol``/``port`` be opened? Both the client's egress and the
server's ingress must allow it:

* A pod is isolated for ingress (egress) when some policy in its namespace selects it
  (``spec.podSelector``, empty = all pods) and that policy's ``policyTypes`` contain Ingress
  (Egress). Without ``policyTypes`` a policy has Ingress, plus Egress if it has egress rules.
* An isolated pod accepts what at least one rule of at least one of those policies allows.
* A rule allows a peer when ``from``/``to`` is empty or any peer matches: ``ipBlock`` (inside
  ``cidr`` and not inside any ``except``); otherwise ``namespaceSelector`` (absent = the
  policy's own namespace) AND ``podSelector`` (absent = every pod).
* ...and the port when ``ports`` is empty or any entry matches: protocol (default TCP), port
  absent = all, a number (up to ``endPort`` when set), or a name, which is looked up among the
  DESTINATION pod's container ports (same protocol).
* Namespaces carry ``kubernetes.io/metadata.name``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]


@dataclass
class ModelPod:
    namespace: str
    name: str
    labels: dict[str, str]
    ip: str
    ports: list[dict[str, Any]] = field(default_factory=list)  # containerPort entries

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def selector_matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        has = key in labels
        if op == "In" and not (has and labels[key] in values):
            return False
        if op == "NotIn" and has and labels[key] in values:
            return False
        if op == "Exists" and not has:
            return False
        if op == "DoesNotExist" and has:
            return False
    return True


class NetpolModel:
    def __init__(self, namespaces: Mapping[str, Mapping[str, str]], pods: Iterable[ModelPod],
                 policies: Iterable[Obj]) -> None:
        self.ns_labels = {n: {**labels, "kubernetes.io/metadata.name": n}
                          for n, labels in namespaces.items()}
        self.pods = list(pods)
        self.policies = list(policies)

    @staticmethod
    def _types(policy: Obj) -> list[str]:
        spec = policy.get("spec") or {}
        if spec.get("policyTypes"):
            return list(spec["policyTypes"])
        return ["Ingress", *(["Egress"] if spec.get("egress") else [])]

    def _selecting(self, pod: ModelPod, kind: str) -> list[Obj]:
        out = []
        for p in self.policies:
            ns = p["metadata"].get("namespace", "default")
            if ns == pod.namespace and kind in self._types(p) and selector_matches(
                    (p.get("spec") or {}).get("podSelector") or {}, pod.labels):
                out.append(p)
        return out

    def _peer_ok(self, peers: list[Obj] | None, policy_ns: str, other: ModelPod) -> bool:
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if block is not None:
                addr = ipaddress.ip_address(other.ip)
                if addr in ipaddress.ip_network(block["cidr"], strict=False) and not any(
                        addr in ipaddress.ip_network(e, strict=False) for e in block.get("except") or []):
                    return True
                continue
            ns_sel = peer.get("namespaceSelector")
            if ns_sel is None:
                ns_ok = other.namespace == policy_ns
            else:
                ns_ok = selector_matches(ns_sel, self.ns_labels.get(other.namespace, {
                    "kubernetes.io/metadata.name": other.namespace}))
            if ns_ok and selector_matches(peer.get("podSelector"), other.labels):
                return True
        return False

    @staticmethod
    def _port_ok(ports: list[Obj] | None, dst: ModelPod, protocol: str, port: int) -> bool:
        if not ports:
            return True
        for entry in ports:
            if entry.get("protocol", "TCP") != protocol:
                continue
            want = entry.get("port")
            if want is None:
                return True
            if isinstance(want, int):
                if want == port or (entry.get("endPort") and want <= port <= entry["endPort"]):
                    return True
                continue
            for cp in dst.ports:
                if cp.get("name") == want and cp.get("protocol", "TCP") == protocol \
                        and cp["containerPort"] == port:
                    return True
        return False

    def _side_ok(self, pod: ModelPod, kind: str, other: ModelPod, dst: ModelPod,
                 protocol: str, port: int) -> bool:
        policies = self._selecting(pod, kind)
        if not policies:
            return True
        field_ = "ingress" if kind == "Ingress" else "egress"
        peer_field = "from" if kind == "Ingress" else "to"
        for p in policies:
            ns = p["metadata"].get("namespace", "default")
            for rule in (p.get("spec") or {}).get(field_) or []:
                if self._peer_ok(rule.get(peer_field), ns, other) and self._port_ok(
                        rule.get("ports"), dst, protocol, port):
                    return True
        return False

    def allowed(self, src: ModelPod, dst: ModelPod, protocol: str, port: int) -> bool:
        return (self._side_ok(src, "Egress", dst, dst, protocol, port)
                and self._side_ok(dst, "Ingress", src, dst, protocol, port))

    def matrix(self, ports: Iterable[int], protocols: Iterable[str]) -> dict[tuple[str, str, int, str], bool]:
        out = {}
        for src in self.pods:
            for dst in self.pods:
                if src is dst:
                    continue
                for port in ports:
                    for proto in protocols:
                        out[(src.key, dst.key, port, proto.lower())] = self.allowed(src, dst, proto.upper(), port)
        return out
