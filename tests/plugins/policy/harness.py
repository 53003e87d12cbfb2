"""The policy pipeline without a dataplane: KSR conversion -> cache -> processor -> renderer,
one processor/renderer pair per simulated node."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plugins.ksr.convert import convert
from plugins.ksr.model import Namespace, Pod, Policy
from plugins.linux.nft.table import NftTableValue
from plugins.policy.cache import pod_info
from plugins.policy.processor import PolicyProcessor
from plugins.policy.renderer.nftables import NftablesPolicyRenderer
from tests.plugins.policy import netpol_cases as nc
from tests.plugins.policy.netpol_model import ModelPod

Obj = dict[str, Any]


class Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.processor = PolicyProcessor()
        self.renderer = NftablesPolicyRenderer()

    def flush(self) -> NftTableValue:
        self.renderer.apply(self.processor.flush())
        return self.renderer.value()


class Cluster:
    """x, y, z x a, b, c over two simulated nodes (alternating)."""

    def __init__(self) -> None:
        self.nodes = [Node("node1"), Node("node2")]
        self.namespaces: dict[str, Obj] = {}
        self.pods: dict[str, Obj] = {}
        self.ips: dict[str, str] = {}
        self.node_of: dict[str, Node] = {}
        self.policies: dict[str, Obj] = {}
        i = 0
        for ns in nc.NAMESPACES:
            self.set_namespace(nc.namespace_manifest(ns))
            for name in nc.PODS:
                key = f"{ns}/{name}"
                node = self.nodes[i % 2]
                self.ips[key] = f"10.1.{i % 2 + 1}.{10 + i}"
                self.node_of[key] = node
                node.processor.set_local(key, self.ips[key])
                self.set_pod(nc.pod_manifest(ns, name))
                i += 1

    def set_namespace(self, obj: Obj) -> None:
        _, model = convert("namespace", obj)
        assert isinstance(model, Namespace)
        self.namespaces[model.name] = obj
        for node in self.nodes:
            before = dict(node.processor.cache.ns_labels(model.name))
            node.processor.cache.set_namespace(model.name, model)
            node.processor.namespace_changed(model.name, before)

    def set_pod(self, obj: Obj) -> None:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        obj = {**obj, "status": {"podIP": self.ips[key], "phase": "Running"}}
        _, model = convert("pod", obj)
        assert isinstance(model, Pod)
        self.pods[key] = obj
        for node in self.nodes:
            node.processor.pod_changed(key, pod_info(model))

    def set_policy(self, obj: Obj, delete: bool = False) -> str | None:
        _, model = convert("policy", obj)
        assert isinstance(model, Policy)
        key = f"{model.namespace}/{model.name}"
        error = None
        for node in self.nodes:
            _, error = node.processor.cache.set_policy(key, None if delete else model)
            node.processor.policy_changed(model.namespace)
        if delete or error is not None:
            self.policies.pop(key, None)
        else:
            self.policies[key] = obj
        return error

    def tables(self) -> dict[str, NftTableValue]:
        return {n.name: n.flush() for n in self.nodes}

    def model_pods(self) -> list[ModelPod]:
        out = []
        for key, obj in self.pods.items():
            ports = [p for c in obj["spec"]["containers"] for p in c.get("ports", [])]
            out.append(ModelPod(obj["metadata"]["namespace"], obj["metadata"]["name"],
                                dict(obj["metadata"].get("labels") or {}), self.ips[key], ports))
        return out

    def ns_labels(self) -> Mapping[str, Mapping[str, str]]:
        return {n: o["metadata"].get("labels") or {} for n, o in self.namespaces.items()}

    def matrix(self, tables: Mapping[str, NftTableValue]) -> dict[tuple[str, str, int, str], bool]:
        from tests.plugins.policy.nft_eval import allowed

        out = {}
        for src in self.pods:
            for dst in self.pods:
                if src == dst:
                    continue
                for port in nc.PORTS:
                    for proto in nc.PROTOCOLS:
                        out[(src, dst, port, proto)] = allowed(
                            tables[self.node_of[src].name], tables[self.node_of[dst].name],
                            self.ips[src], self.ips[dst], proto, port)
        return out


def diff(expected: Mapping[Any, bool], got: Mapping[Any, bool]) -> list[str]:
    return [f"{k}: expected {'allowed' if v else 'denied'}" for k, v in sorted(expected.items())
            if got.get(k) != v]


def apply_all(cluster: Cluster, policies: Iterable[Obj]) -> None:
    for p in policies:
        cluster.set_policy(p)
