"""Inputs for ipnet tests: the real IPAM (memory KV backend) and plain node/pod tables.

The node table and the local pod records are plain objects satisfying ``NodeSyncAPI`` and
``PodManagerAPI``: they are the *inputs* ipnet reads, so a dict is all they need to be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from core.kvdb.plugin import KVDBPlugin
from plugins.ipam.api import NodeAddressPlan
from plugins.ipam.config import IPAMConfig
from plugins.ipam.plan import node_plan, resolve_plan
from plugins.ipam.plugin import IPAMPlugin
from plugins.nodesync.api import Node
from plugins.podmanager.api import LocalPod, PodID


class NodeTable:
    """This node's name and ID and the table of all nodes (``NodeSyncAPI``)."""

    def __init__(self, me: str, nodes: Mapping[str, Node]) -> None:
        self.me = me
        self.table = dict(nodes)

    def node_id(self) -> int:
        return self.table[self.me].id

    def node_name(self) -> str:
        return self.me

    def nodes(self) -> Mapping[str, Node]:
        return self.table


class PodRecords:
    """The pods wired on this node (``PodManagerAPI``)."""

    def __init__(self) -> None:
        self.pods: dict[PodID, LocalPod] = {}

    def local_pods(self) -> Mapping[PodID, LocalPod]:
        return self.pods


def node(node_id: int, name: str | None = None, ip: str | None = None,
         mgmt: list[str] | None = None) -> Node:
    return Node(id=node_id, name=name or f"node{node_id}",
                ip_addresses=[IPv4Interface(ip)] if ip else [], mgmt_addresses=mgmt or [])


def plan(node_id: int, **config: Any) -> NodeAddressPlan:
    return node_plan(resolve_plan(IPAMConfig(**config)), node_id)


@asynccontextmanager
async def real_ipam(tmp_path: Path, nodes: NodeTable, **config: Any) -> AsyncIterator[IPAMPlugin]:
    """The real IPAM plugin of ``nodes.me`` on an in-memory KV store, closed afterwards."""
    kvdb = KVDBPlugin()
    await kvdb.init()
    state = tmp_path / f"ipam-{nodes.me}.json"
    ipam = IPAMPlugin(IPAMConfig(state_file=state, **config), kvdb=kvdb, nodesync=nodes)
    await ipam.init()
    try:
        yield ipam
    finally:
        await ipam.close()
        await kvdb.close()
