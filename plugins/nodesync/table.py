"""The node table: every node with its ID, dataplane addresses and management addresses."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Interface
from typing import Any

from plugins.nodesync.api import Node, VppNode

#: Kubernetes node address types that count as management addresses (Contiv's choice).
MGMT_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


def dataplane_addresses(record: VppNode, log: logging.Logger) -> list[IPv4Interface]:
    """The record's addresses that parse as IPv4 interfaces (others are logged and skipped)."""
    result: list[IPv4Interface] = []
    for text in record.ip_addresses:
        try:
            result.append(IPv4Interface(text))
        except ValueError:
            log.warning("node %s: ignoring dataplane address %r (not IPv4 CIDR)", record.name, text)
    return result


def k8s_mgmt_addresses(k8s_node: Any) -> list[str]:
    """InternalIP and ExternalIP addresses of a reflected Kubernetes Node, in that order."""
    addresses = getattr(k8s_node, "addresses", None) or []
    result: list[str] = []
    for kind in MGMT_ADDRESS_TYPES:
        for address in addresses:
            if getattr(address, "type", "") == kind and getattr(address, "address", ""):
                result.append(str(address.address))
    return result


def node_from_record(record: VppNode, k8s_mgmt: list[str] | None, log: logging.Logger) -> Node:
    """One table entry; Kubernetes' addresses win over the record's configured ones."""
    mgmt = k8s_mgmt if k8s_mgmt else list(record.mgmt_addresses)
    return Node(id=record.id, name=record.name, ip_addresses=dataplane_addresses(record, log), mgmt_addresses=mgmt)


def build_node_table(
    records: Iterable[VppNode], k8s_nodes: Mapping[str, Any], log: logging.Logger
) -> dict[str, Node]:
    """Nodes by name from the ID records; ``k8s_nodes`` (by name) supplies management addresses.

    When two records carry the same name, the lower ID wins (the one allocation reuses).
    """
    table: dict[str, Node] = {}
    for record in sorted(records, key=lambda r: r.id):
        if record.name in table:
            log.warning("node %s has several ID records; keeping ID %d", record.name, table[record.name].id)
            continue
        k8s = k8s_nodes.get(record.name)
        table[record.name] = node_from_record(record, k8s_mgmt_addresses(k8s) if k8s is not None else None, log)
    return table
