"""This node's address plan and pod subnet: taken, or pending (and why) while
``pod_subnet_source: kubernetes`` waits for the Node's ``spec.podCIDR``; reported to health."""

from __future__ import annotations

import logging
from collections.abc import Callable
from ipaddress import IPv4Network

from core.health import HealthPlugin
from plugins.controller.api import EventMethod, ResyncEventBase
from plugins.ipam.api import NodeAddressPlan, PodSubnetPendingError
from plugins.ipam.plan import with_pod_subnet
from plugins.ipam.podcidr import PodSubnetLookup, waiting_for

#: The health component ipam reports (``pod_subnet_source: kubernetes`` only).
HEALTH_COMPONENT = "ipam"
NOT_INITIALISED = "ipam is not initialised yet (its init() has not run)"


class PodSubnetResync(ResyncEventBase):
    """Pushed by ipam when this node's pod subnet arrived after start: every handler resyncs
    (the earlier resyncs stopped at ipam, waiting for it)."""

    name = "Pod Subnet Resync"
    method = EventMethod.FULL_RESYNC

    def __init__(self, subnet: str) -> None:
        super().__init__()
        self.subnet = subnet

    def describe(self) -> str:
        return f"{self.name}: this node's pod subnet is {self.subnet}"


class OwnPodSubnet:
    """The plan by node ID alone (``base``), and the plan with the pod subnet in use (``plan``,
    None until taken; ``pending`` says why meanwhile)."""

    def __init__(self, node_name: Callable[[], str], from_kubernetes: bool, health: HealthPlugin | None,
                 log: logging.Logger) -> None:
        self._node_name = node_name
        self._from_kubernetes = from_kubernetes
        self._health = health
        self._log = log
        #: The pod subnet is block <ID>, or a placeholder with ``pod_subnet_source: kubernetes``;
        #: the node addresses are taken from it.
        self.base_plan: NodeAddressPlan | None = None
        self.plan: NodeAddressPlan | None = None
        #: ``kubernetes`` source: why this node has no pod subnet yet ("" once it has one).
        self.pending = ""

    def base(self) -> NodeAddressPlan:
        if self.base_plan is None:
            raise RuntimeError(NOT_INITIALISED)
        return self.base_plan

    def node_plan(self) -> NodeAddressPlan:
        if self.plan is None:
            self.require()
            raise RuntimeError(NOT_INITIALISED)
        return self.plan

    def require(self) -> None:
        """Raise why nothing can be allocated yet, when it is the pending pod subnet."""
        if self.pending:
            raise PodSubnetPendingError(self.pending)

    def plan_with(self, pod_subnet: IPv4Network | None) -> NodeAddressPlan:
        """This node's plan with ``pod_subnet`` (None: the plan's own block)."""
        base = self.base()
        return base if pod_subnet is None else with_pod_subnet(base, pod_subnet)

    def taken(self, plan: NodeAddressPlan, restored: int) -> None:
        """``plan``'s pod subnet is in use now, with ``restored`` allocations loaded."""
        self.plan = plan
        if self.pending:
            self._log.info("Node %s spec.podCIDR %s: this node's pod subnet; %d allocation(s) restored",
                           self._node_name(), plan.pod_subnet, restored)
        self.pending = ""
        if self._from_kubernetes:
            self._report(True, f"pod subnet {plan.pod_subnet} from Node {self._node_name()} spec.podCIDR")

    def set_pending(self, found: PodSubnetLookup) -> None:
        """This node has no usable pod subnet yet: not ready, saying why."""
        name = self._node_name()
        reason = waiting_for(name) if found.missing else f"{waiting_for(name)}: {found.problem}"
        if reason != self.pending:
            self._log.error("%s; no pod can be wired until then", reason)
        self.pending = reason
        self._report(False, reason)

    def check(self, found: PodSubnetLookup) -> None:
        """The subnet in use is kept for the process's life; a different podCIDR is reported."""
        current = self.node_plan().pod_subnet
        if found.subnet is None or found.subnet == current:
            self._report(True, f"pod subnet {current} from Node {self._node_name()} spec.podCIDR")
            return
        detail = (f"Node {self._node_name()} spec.podCIDR is now {found.subnet}, the pods use "
                  f"{current}: restart the agent to take the new subnet")
        self._log.error("%s", detail)
        self._report(False, detail)

    def _report(self, ok: bool, detail: str) -> None:
        if self._health is not None:
            self._health.report(HEALTH_COMPONENT, ok, detail)
