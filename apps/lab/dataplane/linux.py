"""The default dataplane: the kernel's, on each node's ``eth0`` (nothing to add to the node)."""

from __future__ import annotations

from typing import Any

from apps.lab.state import LabState, NodeState


class LinuxDataplane:
    """The agent's defaults: Linux routes, veth pods, nftables; the node is reached at ``eth0``."""

    name = "linux"

    def check(self) -> None:
        return None

    def prepare_node(self, state: LabState, node: NodeState) -> None:
        return None

    def agent_overlay(self, state: LabState, node: NodeState, plugins: list[str]) -> dict[str, Any]:
        return {}

    def data_ip(self, node: NodeState) -> str:
        return node.ip.split("/")[0]
