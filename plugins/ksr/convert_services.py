"""Kubernetes Services, Endpoints and EndpointSlices (raw JSON) -> the KSR models."""

from __future__ import annotations

from typing import Any

from plugins.ksr import model as m
from plugins.ksr.rawobj import (
    BadObjectError,
    Obj,
    as_list,
    as_map,
    metadata,
    object_ref,
    required,
    str_map,
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
    name, ns, meta = metadata(obj, namespaced=True)
    spec = as_map(obj.get("spec"), "spec")
    status = as_map(obj.get("status"), "status")
    affinity = as_map(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
    client_ip = as_map(affinity.get("clientIP"), "sessionAffinityConfig.clientIP")
    ingress = as_list(as_map(status.get("loadBalancer"), "status.loadBalancer").get("ingress"), "ingress")
    ports = []
    for p in as_list(spec.get("ports"), "spec.ports"):
        p = as_map(p, "spec.ports[]")
        port = required(p, "port", "spec.ports[]")
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
        selector=str_map(spec.get("selector"), "spec.selector"),
        cluster_ip=cluster_ip,
        cluster_ips=as_list(spec.get("clusterIPs"), "spec.clusterIPs") or ([cluster_ip] if cluster_ip else []),
        ip_families=as_list(spec.get("ipFamilies"), "spec.ipFamilies"),
        ip_family_policy=spec.get("ipFamilyPolicy", ""),
        service_type=spec.get("type", "ClusterIP"),
        external_ips=as_list(spec.get("externalIPs"), "spec.externalIPs"),
        external_name=spec.get("externalName", ""),
        lb_ingress_ips=[str(as_map(i, "ingress")["ip"]) for i in ingress if as_map(i, "ingress").get("ip")],
        loadbalancer_ip=spec.get("loadBalancerIP", ""),
        loadbalancer_source_ranges=as_list(spec.get("loadBalancerSourceRanges"), "loadBalancerSourceRanges"),
        session_affinity=spec.get("sessionAffinity", "None"),
        session_affinity_timeout=client_ip.get("timeoutSeconds", 0),
        external_traffic_policy=spec.get("externalTrafficPolicy", ""),
        internal_traffic_policy=spec.get("internalTrafficPolicy", ""),
        labels=str_map(meta.get("labels"), "metadata.labels"),
        health_check_node_port=spec.get("healthCheckNodePort", 0),
        annotations=str_map(meta.get("annotations"), "metadata.annotations"),
    )


def _endpoint_port(p: Any) -> m.EndpointPort:
    p = as_map(p, "ports[]")
    return m.EndpointPort(
        name=p.get("name") or "",
        port=p.get("port") or 0,
        protocol=m.Protocol(p.get("protocol") or "TCP"),
        app_protocol=p.get("appProtocol") or "",
    )


def _endpoint_address(a: Any) -> m.EndpointAddress:
    a = as_map(a, "addresses[]")
    return m.EndpointAddress(
        ip=a.get("ip"),
        host_name=a.get("hostname", ""),
        node_name=a.get("nodeName", ""),
        target_ref=object_ref(a.get("targetRef")),
    )


def endpoints(obj: Obj) -> m.Endpoints:
    name, ns, _ = metadata(obj, namespaced=True)
    subsets = []
    for s in as_list(obj.get("subsets"), "subsets"):
        s = as_map(s, "subsets[]")
        subsets.append(
            m.EndpointSubset(
                addresses=[_endpoint_address(a) for a in as_list(s.get("addresses"), "addresses")],
                not_ready_addresses=[
                    _endpoint_address(a) for a in as_list(s.get("notReadyAddresses"), "notReadyAddresses")
                ],
                ports=[_endpoint_port(p) for p in as_list(s.get("ports"), "ports")],
            )
        )
    return m.Endpoints(name=name, namespace=ns, endpoint_subsets=subsets)


def _flag(value: Any, default: bool) -> bool:
    # EndpointConditions: nil means "unknown", which consumers treat as the default.
    return default if value is None else bool(value)


def endpointslice(obj: Obj) -> m.EndpointSlice:
    name, ns, meta = metadata(obj, namespaced=True)
    labels = str_map(meta.get("labels"), "metadata.labels")
    eps = []
    for e in as_list(obj.get("endpoints"), "endpoints"):
        e = as_map(e, "endpoints[]")
        cond = as_map(e.get("conditions"), "conditions")
        ready = _flag(cond.get("ready"), True)
        eps.append(
            m.SliceEndpoint(
                addresses=as_list(e.get("addresses"), "addresses"),
                ready=ready,
                serving=_flag(cond.get("serving"), ready),
                terminating=_flag(cond.get("terminating"), False),
                hostname=e.get("hostname") or "",
                node_name=e.get("nodeName") or "",
                zone=e.get("zone") or "",
                target_ref=object_ref(e.get("targetRef")),
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
        ports=[_endpoint_port(p) for p in as_list(obj.get("ports"), "ports")],
    )
