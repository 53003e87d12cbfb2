"""Kubernetes JSON (as the API or a manifest gives it) -> the KSR models.

Every converter takes the object as a plain dict (camelCase, like the wire format) and returns
the model, or raises :class:`BadObjectError` naming the object and the field that did not parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from plugins.ksr import keys as ks
from plugins.ksr import model as m
from plugins.ksr.convert_policy import policy
from plugins.ksr.convert_services import endpoints, endpointslice, service
from plugins.ksr.rawobj import (
    BadObjectError,
    Obj,
    as_list,
    as_map,
    condition,
    metadata,
    object_name,
    required,
    str_map,
)

__all__ = ["CONVERTERS", "KINDS", "BadObjectError", "convert", "endpoints", "endpointslice", "namespace",
           "node", "object_name", "pod", "policy", "service"]


def namespace(obj: Obj) -> m.Namespace:
    name, _, meta = metadata(obj, namespaced=False)
    return m.Namespace(name=name, labels=str_map(meta.get("labels"), "metadata.labels"))


def pod(obj: Obj, annotation_prefixes: Sequence[str] = (m.POD_ANNOTATION_PREFIX,)) -> m.Pod:
    name, ns, meta = metadata(obj, namespaced=True)
    spec = as_map(obj.get("spec"), "spec")
    status = as_map(obj.get("status"), "status")
    annotations = str_map(meta.get("annotations"), "metadata.annotations")
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
                for p in as_list(c.get("ports"), f"container {c.get('name')} ports")
            ],
        )
        for c in as_list(spec.get("containers"), "spec.containers")
    ]
    return m.Pod(
        name=name,
        namespace=ns,
        uid=meta.get("uid", ""),
        labels=str_map(meta.get("labels"), "metadata.labels"),
        annotations={k: v for k, v in annotations.items() if k.startswith(tuple(annotation_prefixes))},
        node_name=spec.get("nodeName", ""),
        host_network=spec.get("hostNetwork", False),
        ip_address=status.get("podIP", ""),
        ip_addresses=[as_map(p, "podIPs")["ip"] for p in as_list(status.get("podIPs"), "status.podIPs")],
        host_ip_address=status.get("hostIP", ""),
        host_ip_addresses=[
            as_map(p, "hostIPs")["ip"] for p in as_list(status.get("hostIPs"), "status.hostIPs")
        ],
        phase=status.get("phase", ""),
        ready=condition(status, "Ready"),
        terminating=meta.get("deletionTimestamp") is not None,
        containers=containers,
    )


def node(obj: Obj) -> m.Node:
    name, _, _ = metadata(obj, namespaced=False)
    spec = as_map(obj.get("spec"), "spec")
    status = as_map(obj.get("status"), "status")
    info = as_map(status.get("nodeInfo"), "status.nodeInfo")
    return m.Node(
        name=name,
        pod_cidr=spec.get("podCIDR", ""),
        pod_cidrs=as_list(spec.get("podCIDRs"), "spec.podCIDRs"),
        provider_id=spec.get("providerID", ""),
        unschedulable=spec.get("unschedulable", False),
        addresses=[
            m.NodeAddress(
                type=required(as_map(a, "addresses[]"), "type", "status.addresses[]"),
                address=required(a, "address", "status.addresses[]"),
            )
            for a in as_list(status.get("addresses"), "status.addresses")
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
        ready=condition(status, "Ready"),
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
