"""Kubernetes JSON (as the API or a manifest gives it) -> the KSR models.

Every converter takes the object as a plain dict (camelCase, like the wire format) and returns
the model, or raises :class:`BadObjectError` naming the object and the field that did not parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from plugins.ksr import keys as ks
from plugins.ksr import model as m

Obj = Mapping[str, Any]


class BadObjectError(ValueError):
    """A Kubernetes object whose fields do not parse; it is skipped and counted."""


def object_name(obj: Obj) -> tuple[str, str]:
    """``(namespace, name)`` of a raw object ('' where missing)."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return "", ""
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _map(value: Any, what: str) -> Obj:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadObjectError(f"{what} must be an object, not {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadObjectError(f"{what} must be a list, not {type(value).__name__}")
    return value


def _req(obj: Obj, field: str, what: str) -> Any:
    """A required field; its absence is a bad object."""
    value = obj.get(field)
    if value is None:
        raise BadObjectError(f"{what}.{field} is missing")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _map(value, what).items()}


def _meta(obj: Obj, namespaced: bool) -> tuple[str, str, Obj]:
    meta = _map(obj.get("metadata"), "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise BadObjectError("metadata.name is missing")
    namespace = meta.get("namespace") or ("default" if namespaced else "")
    if not isinstance(namespace, str):
        raise BadObjectError("metadata.namespace must be a string")
    return name, namespace, meta


def _ref(value: Any) -> m.ObjectReference | None:
    if value is None:
        return None
    ref = _map(value, "targetRef")
    return m.ObjectReference(
        kind=ref.get("kind", ""),
        namespace=ref.get("namespace", ""),
        name=ref.get("name", ""),
        uid=ref.get("uid", ""),
        api_version=ref.get("apiVersion", ""),
        resource_version=ref.get("resourceVersion", ""),
    )


def _selector(value: Any, what: str) -> m.LabelSelector:
    sel = _map(value, what)
    return m.LabelSelector(
        match_labels=_str_map(sel.get("matchLabels"), f"{what}.matchLabels"),
        match_expressions=[
            m.LabelSelectorRequirement(
                key=e.get("key"), operator=e.get("operator"), values=_list(e.get("values"), "values")
            )
            for e in _list(sel.get("matchExpressions"), f"{what}.matchExpressions")
        ],
    )


def namespace(obj: Obj) -> m.Namespace:
    name, _, meta = _meta(obj, namespaced=False)
    return m.Namespace(name=name, labels=_str_map(meta.get("labels"), "metadata.labels"))


def _condition(status: Obj, kind: str) -> bool:
    for cond in _list(status.get("conditions"), "status.conditions"):
        if _map(cond, "condition").get("type") == kind:
            return bool(cond.get("status") == "True")
    return False


def pod(obj: Obj, annotation_prefixes: Sequence[str] = (m.POD_ANNOTATION_PREFIX,)) -> m.Pod:
    name, ns, meta = _meta(obj, namespaced=True)
    spec = _map(obj.get("spec"), "spec")
    status = _map(obj.get("status"), "status")
    annotations = _str_map(meta.get("annotations"), "metadata.annotations")
    containers = [
        m.Container(
            name=c.get("name", ""),
            ports=[
                m.ContainerPort(
                    name=p.get("name", ""),
                    container_port=p.get("containerPort"),
                    host_port=p.get("hostPort", 0),
                    protocol=p.get("protocol", "TCP"),
                    host_ip_address=p.get("hostIP", ""),
                )
                for p in _list(c.get("ports"), f"container {c.get('name')} ports")
            ],
        )
        for c in _list(spec.get("containers"), "spec.containers")
    ]
    return m.Pod(
        name=name,
        namespace=ns,
        uid=meta.get("uid", ""),
        labels=_str_map(meta.get("labels"), "metadata.labels"),
        annotations={k: v for k, v in annotations.items() if k.startswith(tuple(annotation_prefixes))},
        node_name=spec.get("nodeName", ""),
        host_network=spec.get("hostNetwork", False),
        ip_address=status.get("podIP", ""),
        ip_addresses=[_map(p, "podIPs")["ip"] for p in _list(status.get("podIPs"), "status.podIPs")],
        host_ip_address=status.get("hostIP", ""),
        host_ip_addresses=[
            _map(p, "hostIPs")["ip"] for p in _list(status.get("hostIPs"), "status.hostIPs")
        ],
        phase=status.get("phase", ""),
        ready=_condition(status, "Ready"),
        terminating=meta.get("deletionTimestamp") is not None,
        containers=containers,
    )


def _target_port(value: Any) -> m.TargetPort:
    if value is None:
        return m.TargetPort()
    if isinstance(value, bool):
        raise BadObjectError("targetPort must be a number or a name")
    if isinstance(value, int):
        return m.TargetPort(type=m.TargetPortType.NUMBER, int_val=value)
    if isinstance(value, str):
        if value.isdigit():
            return m.TargetPort(type=m.TargetPortType.NUMBER, int_val=int(value))
        return m.TargetPort(type=m.TargetPortType.STRING, string_val=value)
    raise BadObjectError(f"targetPort must be a number or a name, not {value!r}")


def service(obj: Obj) -> m.Service:
    name, ns, meta = _meta(obj, namespaced=True)
    spec = _map(obj.get("spec"), "spec")
    status = _map(obj.get("status"), "status")
    affinity = _map(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
    client_ip = _map(affinity.get("clientIP"), "sessionAffinityConfig.clientIP")
    ingress = _list(_map(status.get("loadBalancer"), "status.loadBalancer").get("ingress"), "ingress")
    ports = []
    for p in _list(spec.get("ports"), "spec.ports"):
        p = _map(p, "spec.ports[]")
        port = _req(p, "port", "spec.ports[]")
        ports.append(
            m.ServicePort(
                name=p.get("name", ""),
                protocol=p.get("protocol", "TCP"),
                port=port,
                # An absent targetPort means "the same as port" in Kubernetes.
                target_port=_target_port(p.get("targetPort", port)),
                node_port=p.get("nodePort", 0),
            )
        )
    cluster_ip = spec.get("clusterIP", "")
    return m.Service(
        name=name,
        namespace=ns,
        ports=ports,
        selector=_str_map(spec.get("selector"), "spec.selector"),
        cluster_ip=cluster_ip,
        cluster_ips=_list(spec.get("clusterIPs"), "spec.clusterIPs") or ([cluster_ip] if cluster_ip else []),
        ip_families=_list(spec.get("ipFamilies"), "spec.ipFamilies"),
        ip_family_policy=spec.get("ipFamilyPolicy", ""),
        service_type=spec.get("type", "ClusterIP"),
        external_ips=_list(spec.get("externalIPs"), "spec.externalIPs"),
        external_name=spec.get("externalName", ""),
        lb_ingress_ips=[str(_map(i, "ingress")["ip"]) for i in ingress if _map(i, "ingress").get("ip")],
        loadbalancer_ip=spec.get("loadBalancerIP", ""),
        loadbalancer_source_ranges=_list(spec.get("loadBalancerSourceRanges"), "loadBalancerSourceRanges"),
        session_affinity=spec.get("sessionAffinity", "None"),
        session_affinity_timeout=client_ip.get("timeoutSeconds", 0),
        external_traffic_policy=spec.get("externalTrafficPolicy", ""),
        internal_traffic_policy=spec.get("internalTrafficPolicy", ""),
        health_check_node_port=spec.get("healthCheckNodePort", 0),
        annotations=_str_map(meta.get("annotations"), "metadata.annotations"),
    )


def _endpoint_port(p: Any) -> m.EndpointPort:
    p = _map(p, "ports[]")
    return m.EndpointPort(
        name=p.get("name") or "",
        port=p.get("port") or 0,
        protocol=m.Protocol(p.get("protocol") or "TCP"),
        app_protocol=p.get("appProtocol") or "",
    )


def _endpoint_address(a: Any) -> m.EndpointAddress:
    a = _map(a, "addresses[]")
    return m.EndpointAddress(
        ip=a.get("ip"),
        host_name=a.get("hostname", ""),
        node_name=a.get("nodeName", ""),
        target_ref=_ref(a.get("targetRef")),
    )


def endpoints(obj: Obj) -> m.Endpoints:
    name, ns, _ = _meta(obj, namespaced=True)
    subsets = []
    for s in _list(obj.get("subsets"), "subsets"):
        s = _map(s, "subsets[]")
        subsets.append(
            m.EndpointSubset(
                addresses=[_endpoint_address(a) for a in _list(s.get("addresses"), "addresses")],
                not_ready_addresses=[
                    _endpoint_address(a) for a in _list(s.get("notReadyAddresses"), "notReadyAddresses")
                ],
                ports=[_endpoint_port(p) for p in _list(s.get("ports"), "ports")],
            )
        )
    return m.Endpoints(name=name, namespace=ns, endpoint_subsets=subsets)


def _flag(value: Any, default: bool) -> bool:
    # EndpointConditions: nil means "unknown", which consumers treat as the default.
    return default if value is None else bool(value)


def endpointslice(obj: Obj) -> m.EndpointSlice:
    name, ns, meta = _meta(obj, namespaced=True)
    labels = _str_map(meta.get("labels"), "metadata.labels")
    eps = []
    for e in _list(obj.get("endpoints"), "endpoints"):
        e = _map(e, "endpoints[]")
        cond = _map(e.get("conditions"), "conditions")
        ready = _flag(cond.get("ready"), True)
        eps.append(
            m.SliceEndpoint(
                addresses=_list(e.get("addresses"), "addresses"),
                ready=ready,
                serving=_flag(cond.get("serving"), ready),
                terminating=_flag(cond.get("terminating"), False),
                hostname=e.get("hostname") or "",
                node_name=e.get("nodeName") or "",
                zone=e.get("zone") or "",
                target_ref=_ref(e.get("targetRef")),
            )
        )
    address_type = obj.get("addressType")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        raise BadObjectError(f"addressType must be IPv4, IPv6 or FQDN, not {address_type!r}")
    return m.EndpointSlice(
        name=name,
        namespace=ns,
        service_name=labels.get("kubernetes.io/service-name", ""),
        address_type=address_type,
        endpoints=eps,
        ports=[_endpoint_port(p) for p in _list(obj.get("ports"), "ports")],
    )


def _policy_port(p: Any) -> m.PolicyPort:
    p = _map(p, "ports[]")
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
    p = _map(p, "peer")
    block = p.get("ipBlock")
    return m.PolicyPeer(
        pods=None if p.get("podSelector") is None else _selector(p["podSelector"], "podSelector"),
        namespaces=None
        if p.get("namespaceSelector") is None
        else _selector(p["namespaceSelector"], "namespaceSelector"),
        ip_block=None
        if block is None
        else m.IPBlock(
            cidr=_req(_map(block, "ipBlock"), "cidr", "ipBlock"), except_=_list(block.get("except"), "except")
        ),
    )


_POLICY_TYPES = {
    frozenset(): m.PolicyType.DEFAULT,
    frozenset({"Ingress"}): m.PolicyType.INGRESS,
    frozenset({"Egress"}): m.PolicyType.EGRESS,
    frozenset({"Ingress", "Egress"}): m.PolicyType.INGRESS_AND_EGRESS,
}


def policy(obj: Obj) -> m.Policy:
    name, ns, meta = _meta(obj, namespaced=True)
    spec = _map(obj.get("spec"), "spec")
    types = frozenset(_list(spec.get("policyTypes"), "spec.policyTypes"))
    if types not in _POLICY_TYPES:
        raise BadObjectError(f"spec.policyTypes must hold Ingress and/or Egress, not {sorted(types)}")
    return m.Policy(
        name=name,
        namespace=ns,
        labels=dict(sorted(_str_map(meta.get("labels"), "metadata.labels").items())),
        pods=_selector(spec.get("podSelector"), "spec.podSelector"),
        policy_type=_POLICY_TYPES[types],
        ingress_rules=[
            m.IngressRule(
                ports=[_policy_port(p) for p in _list(_map(r, "ingress[]").get("ports"), "ports")],
                from_=[_peer(p) for p in _list(r.get("from"), "from")],
            )
            for r in _list(spec.get("ingress"), "spec.ingress")
        ],
        egress_rules=[
            m.EgressRule(
                ports=[_policy_port(p) for p in _list(_map(r, "egress[]").get("ports"), "ports")],
                to=[_peer(p) for p in _list(r.get("to"), "to")],
            )
            for r in _list(spec.get("egress"), "spec.egress")
        ],
    )


def node(obj: Obj) -> m.Node:
    name, _, _ = _meta(obj, namespaced=False)
    spec = _map(obj.get("spec"), "spec")
    status = _map(obj.get("status"), "status")
    info = _map(status.get("nodeInfo"), "status.nodeInfo")
    return m.Node(
        name=name,
        pod_cidr=spec.get("podCIDR", ""),
        pod_cidrs=_list(spec.get("podCIDRs"), "spec.podCIDRs"),
        provider_id=spec.get("providerID", ""),
        unschedulable=spec.get("unschedulable", False),
        addresses=[
            m.NodeAddress(
                type=_req(_map(a, "addresses[]"), "type", "status.addresses[]"),
                address=_req(a, "address", "status.addresses[]"),
            )
            for a in _list(status.get("addresses"), "status.addresses")
        ],
        node_info=m.NodeSystemInfo(
            machine_id=info.get("machineID", ""),
            system_uuid=info.get("systemUUID", ""),
            boot_id=info.get("bootID", ""),
            kernel_version=info.get("kernelVersion", ""),
            os_image=info.get("osImage", ""),
            container_runtime_version=info.get("containerRuntimeVersion", ""),
            kubelet_version=info.get("kubeletVersion", ""),
            kube_proxy_version=info.get("kubeProxyVersion", ""),
            operating_system=info.get("operatingSystem", ""),
            architecture=info.get("architecture", ""),
        ),
        ready=_condition(status, "Ready"),
    )


CONVERTERS: dict[str, Callable[[Obj], BaseModel]] = {
    "namespace": namespace,
    "pod": pod,
    "policy": policy,
    "service": service,
    "endpoints": endpoints,
    "endpointslice": endpointslice,
    "node": node,
}

#: Kubernetes ``kind`` -> KSR keyword (for manifests).
KINDS: dict[str, str] = {
    "Namespace": "namespace",
    "Pod": "pod",
    "NetworkPolicy": "policy",
    "Service": "service",
    "Endpoints": "endpoints",
    "EndpointSlice": "endpointslice",
    "Node": "node",
}


def convert(
    keyword: str, obj: Obj, pod_annotation_prefixes: Sequence[str] = (m.POD_ANNOTATION_PREFIX,)
) -> tuple[str, BaseModel]:
    """The relative etcd key and model of a raw object; :class:`BadObjectError` if it is bad.

    Pods keep only the annotations whose key starts with one of ``pod_annotation_prefixes``.
    """
    try:
        if not isinstance(obj, Mapping):
            raise BadObjectError(f"object must be a mapping, not {type(obj).__name__}")
        value = pod(obj, pod_annotation_prefixes) if keyword == "pod" else CONVERTERS[keyword](obj)
    except BadObjectError:
        raise
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadObjectError(f"{where}: {first['msg']}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise BadObjectError(f"{type(exc).__name__}: {exc}") from None
    name = getattr(value, "name", "")
    namespace = getattr(value, "namespace", "")
    return ks.object_key(keyword, name, namespace), value
