"""Relative etcd keys of the reflected Kubernetes objects (under ``/vnf-agent/contiv-ksr/``),
and the registry of reflected resources: keyword -> (key prefix, model)."""

from __future__ import annotations

from pydantic import BaseModel

from plugins.ksr.model import (
    ALLOCATED_IDS_PREFIX,
    K8S_PREFIX,
    Endpoints,
    EndpointSlice,
    Namespace,
    Node,
    Pod,
    Policy,
    Service,
)


def _namespaced(keyword: str, name: str, namespace: str) -> str:
    if not name or not namespace:
        raise ValueError(f"{keyword} key needs a name and a namespace (got {name!r}, {namespace!r})")
    return f"{K8S_PREFIX}{keyword}/{name}/namespace/{namespace}"


def _cluster(keyword: str, name: str) -> str:
    if not name:
        raise ValueError(f"{keyword} key needs a name")
    return f"{K8S_PREFIX}{keyword}/{name}"


def key_prefix(keyword: str) -> str:
    """Relative prefix of every object of one resource, e.g. ``k8s/pod/``."""
    return f"{K8S_PREFIX}{keyword}/"


def namespace_key(name: str) -> str:
    return _cluster("namespace", name)


def pod_key(name: str, namespace: str) -> str:
    return _namespaced("pod", name, namespace)


def policy_key(name: str, namespace: str) -> str:
    return _namespaced("policy", name, namespace)


def service_key(name: str, namespace: str) -> str:
    return _namespaced("service", name, namespace)


def endpoints_key(name: str, namespace: str) -> str:
    return _namespaced("endpoints", name, namespace)


def endpointslice_key(name: str, namespace: str) -> str:
    return _namespaced("endpointslice", name, namespace)


def node_key(name: str) -> str:
    return _cluster("node", name)


def allocated_id_key(node_id: int) -> str:
    """Relative key of a node-ID record written by nodesync."""
    return f"{ALLOCATED_IDS_PREFIX}{node_id}"


def parse_key(key: str) -> tuple[str, str, str]:
    """Split a relative KSR key into ``(keyword, name, namespace)`` (namespace '' if none)."""
    if not key.startswith(K8S_PREFIX):
        raise ValueError(f"not a KSR k8s key: {key!r}")
    parts = key[len(K8S_PREFIX):].split("/")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1], ""
    if len(parts) == 4 and parts[2] == "namespace" and parts[0] and parts[1] and parts[3]:
        return parts[0], parts[1], parts[3]
    raise ValueError(f"malformed KSR k8s key: {key!r}")


#: Every reflected resource: keyword -> (relative key prefix, model).
RESOURCES: dict[str, tuple[str, type[BaseModel]]] = {
    "namespace": (key_prefix("namespace"), Namespace),
    "pod": (key_prefix("pod"), Pod),
    "policy": (key_prefix("policy"), Policy),
    "service": (key_prefix("service"), Service),
    "endpoints": (key_prefix("endpoints"), Endpoints),
    "endpointslice": (key_prefix("endpointslice"), EndpointSlice),
    "node": (key_prefix("node"), Node),
}

#: The resources that live in a namespace.
NAMESPACED = frozenset({"pod", "policy", "service", "endpoints", "endpointslice"})


def object_key(keyword: str, name: str, namespace: str = "") -> str:
    """The relative key of any reflected object by keyword."""
    if keyword not in RESOURCES:
        raise ValueError(f"unknown KSR resource {keyword!r}; known: {sorted(RESOURCES)}")
    if keyword in NAMESPACED:
        return _namespaced(keyword, name, namespace)
    return _cluster(keyword, name)


def decode_value(keyword: str, value: bytes) -> BaseModel:
    """The model stored at a key of ``keyword`` (for readers of the KSR prefix)."""
    if keyword not in RESOURCES:
        raise ValueError(f"unknown KSR resource {keyword!r}; known: {sorted(RESOURCES)}")
    return RESOURCES[keyword][1].model_validate_json(value)


def keyword_of(key: str) -> str | None:
    """The resource keyword of a relative KSR key (``k8s/pod/...`` -> ``pod``), or None."""
    if not key.startswith(K8S_PREFIX):
        return None
    keyword = key[len(K8S_PREFIX):].split("/", 1)[0]
    return keyword if keyword in RESOURCES else None
