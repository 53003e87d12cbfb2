"""Settings of the nodesync plugin."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from pydantic import ConfigDict, Field

from core.plugin import PluginConfig


class NodeSyncConfig(PluginConfig):
    """Settings of the ``nodesync`` plugin."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)

    management_addresses: list[IPv4Address | IPv6Address] = Field(default_factory=list)
    """This node's management (host) addresses, recorded with its node ID. The Kubernetes
    Node's InternalIP/ExternalIP addresses replace them in the node table once reflected."""

    max_allocation_attempts: int = Field(10, ge=1, le=1000)
    """How often node ID allocation retries after losing a put-if-absent race."""

    max_node_id: int | None = Field(None, ge=1)
    """Highest node ID to hand out (unset: no limit here; the address plan has its own)."""

    etcd_wait_s: float = Field(30.0, ge=0)
    """How long start-up keeps retrying node ID allocation while etcd is unreachable."""
