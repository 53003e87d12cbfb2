"""Shared helpers of the KSR tests: Kubernetes objects and waiting on etcd."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from core.kvdb.api import KVBroker
from plugins.ksr import keys as ks
from plugins.ksr import model as m


def pod(name: str, ns: str = "default", ip: str = "10.1.1.2", node: str = "node1", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": name.split("-")[0]},
            "annotations": {"contivpp.io/custom-if": "memif1/memif", "other.io/x": "y"},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "192.168.16.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    obj.update(extra)
    return obj


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": name}}}


def service(name: str, ns: str = "default", ip: str = "10.96.0.10") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ipFamilies": ["IPv4"],
            "selector": {"app": name},
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
        },
    }


def endpointslice(name: str, service_name: str, ips: list[str], ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": True}, "nodeName": "node1",
             "targetRef": {"kind": "Pod", "name": f"{service_name}-{i}", "namespace": ns}}
            for i, ip in enumerate(ips)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def endpoints(name: str, ips: list[str], ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns},
        "subsets": [{"addresses": [{"ip": ip, "nodeName": "node1"} for ip in ips],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}],
    }


def policy(name: str, ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}},
                                  {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                         "ports": [{"protocol": "TCP", "port": 5432}]}],
        },
    }


def node(name: str, ip: str = "192.168.16.1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": "10.1.1.0/24"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.30.0", "architecture": "amd64"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def stored(broker: KVBroker, key: str) -> dict[str, Any] | None:
    """The JSON at a relative KSR key, or None."""
    kv = await broker.get(m.KSR_PREFIX + key)
    return None if kv is None else json.loads(kv.value)


async def wait_stored(
    broker: KVBroker, key: str, predicate: Callable[[dict[str, Any] | None], bool], timeout_s: float = 15.0
) -> dict[str, Any] | None:
    """Wait until the value at a relative KSR key satisfies ``predicate``; returns it."""
    holder: list[dict[str, Any] | None] = [None]

    async def check() -> bool:
        holder[0] = await stored(broker, key)
        return predicate(holder[0])

    await wait_for(check, timeout_s, f"{key} to match")
    return holder[0]


async def ksr_keys(broker: KVBroker, keyword: str) -> set[str]:
    listed = await broker.list(m.KSR_PREFIX + ks.key_prefix(keyword), keys_only=True)
    return {kv.key[len(m.KSR_PREFIX):] for kv in listed}


async def all_synced(ksr: object, timeout_s: float = 15.0) -> None:
    """Wait until ``ksr`` (a KSRPlugin) leads and every reflector is synced."""
    from plugins.ksr.plugin import KSRPlugin

    assert isinstance(ksr, KSRPlugin)

    async def synced() -> bool:
        return ksr.is_leader and all(ksr.synced().values())

    await wait_for(synced, timeout_s, "every reflector synced")
