"""``pod_subnet_source: kubernetes``: pod subnets from the reflected Nodes' ``spec.podCIDR``.

KSR reflects every Kubernetes Node to ``/vnf-agent/contiv-ksr/k8s/node/<name>``. At start the
agent reads its own Node straight from etcd (the controller has no state yet) and waits a
bounded time for a podCIDR; afterwards the controller's ``node`` resource keeps
:class:`NodePodSubnets` current for every node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from pydantic import ValidationError

from core.kvdb.api import KVBroker, KVError, WatchResync
from plugins.ipam.plan import NodePodCIDRError, NodePodCIDRMissingError, node_pod_subnet
from plugins.ksr.keys import node_key
from plugins.ksr.model import Node as K8sNode


def waiting_for(node_name: str) -> str:
    """The readiness detail while this node's Node has no podCIDR."""
    return f"waiting for Node {node_name} spec.podCIDR"


@dataclass(frozen=True, slots=True)
class PodSubnetLookup:
    """A node's pod subnet, or why it has none (exactly one of the two is set)."""

    subnet: IPv4Network | None
    problem: str = ""
    #: True when the problem is only that the Node has no podCIDR yet.
    missing: bool = False

    def describe(self) -> str:
        return str(self.subnet) if self.subnet is not None else self.problem


def lookup(node_name: str, k8s_node: Any | None, cluster_cidr: IPv4Network) -> PodSubnetLookup:
    """The pod subnet of ``node_name`` from its reflected Node (None: not reflected)."""
    if k8s_node is None:
        return PodSubnetLookup(None, f"Node {node_name} is not reflected from Kubernetes (yet)", missing=True)
    try:
        subnet = node_pod_subnet(
            node_name, str(getattr(k8s_node, "pod_cidr", "") or ""),
            [str(text) for text in getattr(k8s_node, "pod_cidrs", None) or ()], cluster_cidr,
        )
    except NodePodCIDRMissingError as exc:
        return PodSubnetLookup(None, str(exc), missing=True)
    except NodePodCIDRError as exc:
        return PodSubnetLookup(None, str(exc))
    return PodSubnetLookup(subnet)


def _parse(node_name: str, raw: bytes | None, log: logging.Logger) -> K8sNode | None:
    if raw is None:
        return None
    try:
        return K8sNode.model_validate_json(raw)
    except ValidationError as exc:
        log.error("reflected Node %s is malformed: %s", node_name, exc)
        return None


async def wait_for_own_pod_subnet(
    broker: KVBroker, node_name: str, cluster_cidr: IPv4Network, timeout_s: float, log: logging.Logger
) -> PodSubnetLookup:
    """Wait up to ``timeout_s`` for the reflected Node ``node_name`` to carry a podCIDR.

    ``broker`` is the KSR view (``/vnf-agent/contiv-ksr/``). The Node is read once in any case
    (``timeout_s`` 0: no waiting beyond that). Returns at once when the Node has a usable
    podCIDR or an unusable one (waiting would not fix a wrong one); otherwise after the
    timeout, or at once when etcd cannot be read, with the reason.
    """
    key = node_key(node_name)
    try:
        revision = await broker.revision()
        kv = await broker.get(key)
    except (KVError, TimeoutError) as exc:
        return PodSubnetLookup(None, f"{waiting_for(node_name)}: cannot read it from etcd ({exc})", missing=True)
    last = lookup(node_name, _parse(node_name, None if kv is None else kv.value, log), cluster_cidr)
    if not last.missing or timeout_s <= 0:
        return last
    try:
        log.warning("%s (up to %gs before starting not ready)", waiting_for(node_name), timeout_s)
        async with asyncio.timeout(timeout_s):
            events = broker.watch(key, revision + 1)
            try:
                async for item in events:
                    if isinstance(item, WatchResync):
                        raw = next((kv.value for kv in item.snapshot if kv.key == key), None)
                    elif item.key == key:
                        raw = item.value
                    else:
                        continue  # another node whose name starts with ours
                    last = lookup(node_name, _parse(node_name, raw, log), cluster_cidr)
                    if not last.missing:
                        return last
            finally:
                await events.aclose()  # type: ignore[attr-defined]
    except TimeoutError:
        return last
    except KVError as exc:
        return PodSubnetLookup(None, f"{waiting_for(node_name)}: cannot read it from etcd ({exc})", missing=True)
    return last


class NodePodSubnets:
    """The reflected Nodes by name and what each one's pod subnet is (reports changes)."""

    def __init__(self, cluster_cidr: IPv4Network, log: logging.Logger) -> None:
        self.cluster_cidr = cluster_cidr
        self.log = log
        self._nodes: dict[str, Any] = {}
        self._known: dict[str, PodSubnetLookup] = {}

    def lookup(self, node_name: str) -> PodSubnetLookup:
        """The node's pod subnet from its reflected Node, or why there is none."""
        return lookup(node_name, self._nodes.get(node_name), self.cluster_cidr)

    def replace(self, nodes: Mapping[str, Any]) -> list[str]:
        """A resync: every reflected Node; returns the names whose pod subnet changed."""
        self._nodes = dict(nodes)
        return self._refresh(set(self._known) | set(self._nodes))

    def apply(self, node_name: str, k8s_node: Any | None) -> list[str]:
        """One Node added, changed or removed (None); returns ``[node_name]`` if its subnet changed."""
        if k8s_node is None:
            self._nodes.pop(node_name, None)
        else:
            self._nodes[node_name] = k8s_node
        return self._refresh({node_name})

    def problems(self) -> dict[str, str]:
        """Nodes whose podCIDR cannot be used, with the reason (for describing the state)."""
        return {name: found.problem for name, found in sorted(self._known.items()) if found.subnet is None}

    def _refresh(self, names: set[str]) -> list[str]:
        changed: list[str] = []
        for name in sorted(names):
            if name not in self._nodes and name not in self._known:
                continue
            found = self.lookup(name)
            if self._known.get(name) == found:
                continue
            if name in self._nodes:
                self._known[name] = found
            else:
                self._known.pop(name, None)
            changed.append(name)
            if found.subnet is None and not found.missing:
                self.log.error("%s: the node gets no route to its pods until it is fixed", found.problem)
            elif found.subnet is not None:
                self.log.info("Node %s pod subnet %s (spec.podCIDR)", name, found.subnet)
        return changed
