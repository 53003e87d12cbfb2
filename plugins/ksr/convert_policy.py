"""Kubernetes NetworkPolicies (raw JSON) -> the KSR model."""

from __future__ import annotations

from typing import Any

from plugins.ksr import model as m
from plugins.ksr.rawobj import (
    BadObjectError,
    Obj,
    as_list,
    as_map,
    label_selector,
    metadata,
    required,
    str_map,
)


def _policy_port(p: Any) -> m.PolicyPort:
    p = as_map(p, "ports[]")
    port = p.get("port")
    ref: m.PortRef | None
    if port is None:
        ref = None
    elif isinstance(port, int) and not isinstance(port, bool):
        ref = m.PortRef(type=m.PortRefType.NUMBER, number=port)
    elif isinstance(port, str):
        ref = m.PortRef(type=m.PortRefType.NAME, name=port)
    else:
        raise BadObjectError(f"policy port must be a number or a name, not {port!r}")
    return m.PolicyPort(protocol=p.get("protocol", "TCP"), port=ref, end_port=p.get("endPort", 0))


def _peer(p: Any) -> m.PolicyPeer:
    p = as_map(p, "peer")
    block = p.get("ipBlock")
    return m.PolicyPeer(
        pods=None if p.get("podSelector") is None else label_selector(p["podSelector"], "podSelector"),
        namespaces=None
        if p.get("namespaceSelector") is None
        else label_selector(p["namespaceSelector"], "namespaceSelector"),
        ip_block=None
        if block is None
        else m.IPBlock(
            cidr=required(as_map(block, "ipBlock"), "cidr", "ipBlock"), except_=as_list(block.get("except"), "except")
        ),
    )


_POLICY_TYPES = {
    frozenset(): m.PolicyType.DEFAULT,
    frozenset({"Ingress"}): m.PolicyType.INGRESS,
    frozenset({"Egress"}): m.PolicyType.EGRESS,
    frozenset({"Ingress", "Egress"}): m.PolicyType.INGRESS_AND_EGRESS,
}


def policy(obj: Obj) -> m.Policy:
    name, ns, meta = metadata(obj, namespaced=True)
    spec = as_map(obj.get("spec"), "spec")
    types = frozenset(as_list(spec.get("policyTypes"), "spec.policyTypes"))
    if types not in _POLICY_TYPES:
        raise BadObjectError(f"spec.policyTypes must hold Ingress and/or Egress, not {sorted(types)}")
    return m.Policy(
        name=name,
        namespace=ns,
        labels=dict(sorted(str_map(meta.get("labels"), "metadata.labels").items())),
        pods=label_selector(spec.get("podSelector"), "spec.podSelector"),
        policy_type=_POLICY_TYPES[types],
        ingress_rules=[
            m.IngressRule(
                ports=[_policy_port(p) for p in as_list(as_map(r, "ingress[]").get("ports"), "ports")],
                from_=[_peer(p) for p in as_list(r.get("from"), "from")],
            )
            for r in as_list(spec.get("ingress"), "spec.ingress")
        ],
        egress_rules=[
            m.EgressRule(
                ports=[_policy_port(p) for p in as_list(as_map(r, "egress[]").get("ports"), "ports")],
                to=[_peer(p) for p in as_list(r.get("to"), "to")],
            )
            for r in as_list(spec.get("egress"), "spec.egress")
        ],
    )
