"""NodeSync interface: this node's ID and the table of all nodes (contiv.md 3.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Interface
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from plugins.controller.api import Event


class VppNode(BaseModel):
    """The record stored at ``/vnf-agent/contiv-ksr/allocatedIDs/<id>`` (Contiv's VppNode)."""

    id: int
    name: str
    #: Dataplane (node interconnect) addresses in CIDR form.
    ip_addresses: list[str] = []
    #: Management (host) addresses, from the k8s Node object.
    mgmt_addresses: list[str] = []


class Node(BaseModel):
    """One node as seen by handlers."""

    id: int
    name: str
    ip_addresses: list[IPv4Interface] = []
    mgmt_addresses: list[str] = []


class NodeUpdate(Event):
    """A node joined, changed or left (``new`` None). Non-blocking, best-effort."""

    name = "Node Update"

    def __init__(self, node_name: str, prev: Node | None, new: Node | None) -> None:
        super().__init__()
        self.node_name = node_name
        self.prev = prev
        self.new = new

    def describe(self) -> str:
        kind = "joined" if self.prev is None else ("left" if self.new is None else "changed")
        return f"Node Update {self.node_name} {kind}"


class NodeSyncAPI(Protocol):
    def node_id(self) -> int:
        """This node's ID (allocated before the first resync)."""
        ...

    def node_name(self) -> str:
        ...

    def nodes(self) -> Mapping[str, Node]:
        """Every known node by name, this one included."""
        ...


@runtime_checkable
class NodeAddressPublisher(Protocol):
    """Optional part of a NodeSync implementation: record this node's addresses in its ID record.

    The IPAM calls it with the node's dataplane address from the address plan (Contiv's
    ``PublishNodeIPs``); the record is rewritten only when the addresses changed.
    """

    async def publish_node_ips(
        self, ip_addresses: Sequence[IPv4Interface], mgmt_addresses: Sequence[str] | None = None
    ) -> None:
        ...
