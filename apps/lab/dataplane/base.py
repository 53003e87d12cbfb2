"""What a lab dataplane is: what a node needs besides its namespace and ``eth0`` for the agent's
dataplane (``up --dataplane NAME``), and the address its peers reach it at.

Implementations: :mod:`apps.lab.dataplane.linux` (the kernel: nothing to add) and
:mod:`apps.lab.dataplane.vpp` (a real VPP per node); :mod:`apps.lab.dataplane` picks one by name.
"""

from __future__ import annotations

from typing import Any, Protocol

from apps.lab.state import LabState, NodeState


class Dataplane(Protocol):
    """One dataplane. Every method gets the lab's state; a dataplane keeps none of its own."""

    name: str

    def check(self) -> None:
        """Fail early (:class:`~apps.lab.errors.LabError`) when it cannot run on this machine."""

    def prepare_node(self, state: LabState, node: NodeState) -> None:
        """Make what the node's agent needs before it starts (NICs, a VPP, ...)."""

    def agent_overlay(self, state: LabState, node: NodeState, plugins: list[str]) -> dict[str, Any]:
        """What the node's agent config gets on top (``plugins``: the lab's plugin list)."""
        ...

    def data_ip(self, node: NodeState) -> str:
        """The address the node's peers reach it at (its mesh entry's ``node_ip``)."""
        ...
