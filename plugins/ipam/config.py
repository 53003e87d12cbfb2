"""Settings of the ipam plugin: Contiv's ``ipamConfig`` keys plus persistence and release knobs.

Field names are Contiv's ``ipamConfig`` keys in snake case (``podSubnetCIDR`` ->
``pod_subnet_cidr``); the defaults are Contiv's. See ``docs/ipam.md``.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from core.plugin import PluginConfig


class AddressPlanConfig(PluginConfig):
    """The cluster-wide address plan; every node must use the same values.

    Validated as a whole: overlapping networks, per-node prefixes that do not fit, or a
    ``contiv_cidr`` that is too small fail with a message naming the keys involved.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)

    pod_subnet_source: Literal["plan", "kubernetes"] = "plan"
    """Where each node's pod subnet comes from: ``plan`` (block N of ``pod_subnet_cidr`` for node
    ID N, Contiv's scheme) or ``kubernetes`` (the Node's ``spec.podCIDR``, as
    kube-controller-manager ``--allocate-node-cidrs --cluster-cidr`` assigns it; like Cilium's
    ``ipam.mode=kubernetes``). With ``kubernetes``, ``pod_subnet_cidr`` (or ``contiv_cidr``) must be
    set explicitly to the cluster CIDR, and a Node podCIDR outside it is reported, not used."""

    contiv_cidr: IPv4Network | None = None
    """One CIDR (prefix /14 or shorter) split automatically into pod, host, node-interconnect and
    VXLAN networks (Contiv's ``contivCIDR``); when set, the pod and host CIDRs below are ignored."""

    pod_subnet_cidr: IPv4Network = IPv4Network("10.1.0.0/16")
    """All pods of the cluster; each node gets one block of ``pod_subnet_one_node_prefix_len``
    (with ``pod_subnet_source: kubernetes``: the cluster CIDR holding every Node's podCIDR)."""

    pod_subnet_one_node_prefix_len: int = Field(24, ge=1, le=29)
    """Prefix length of one node's pod subnet (node ID N gets block N of the pod CIDR); unused
    with ``pod_subnet_source: kubernetes`` (the Node's podCIDR has its own)."""

    vpp_host_subnet_cidr: IPv4Network = IPv4Network("172.30.0.0/16")
    """Host interconnect networks (vswitch <-> host stack), one block per node."""

    vpp_host_subnet_one_node_prefix_len: int = Field(24, ge=1, le=30)
    """Prefix length of one node's host interconnect subnet."""

    node_interconnect_cidr: IPv4Network | None = None
    """Dataplane addresses of the nodes: node ID N gets host #N. Unset: ``192.168.16.0/24``, or
    the block taken from ``contiv_cidr`` when that is set. (DHCP for node addresses is not
    supported.)"""

    node_interface: str | None = None
    """Take this node's dataplane address from this interface (e.g. ``eth0``) instead of the
    plan: on the Linux dataplane the node already has its address, and the node mesh must use it.
    Unset: the plan's address from ``node_interconnect_cidr``."""

    node_ip: IPv4Address | None = None
    """This node's own address as the cluster knows it (the kubelet's InternalIP: the chart
    passes the pod's ``status.hostIP``); the node's interface that holds it gives the prefix,
    and the node mesh uses it. Ignored when ``node_interface`` is set; unset: the plan's."""

    vxlan_cidr: IPv4Network = IPv4Network("192.168.30.0/24")
    """VXLAN BVI addresses of the node mesh: node ID N gets host #N."""

    service_cidr: IPv4Network = IPv4Network("10.96.0.0/12")
    """Kubernetes service cluster IPs (must match the API server's range)."""

    default_gateway: IPv4Address | None = None
    """A gateway inside the node interconnect network; node addresses skip it."""


    @model_validator(mode="after")
    def _check_plan(self) -> AddressPlanConfig:
        from plugins.ipam.plan import AddressPlanError, resolve_plan

        if self.pod_subnet_source == "kubernetes" and not (
            {"pod_subnet_cidr", "contiv_cidr"} & self.model_fields_set
        ):
            raise ValueError(
                "pod_subnet_source kubernetes needs pod_subnet_cidr set to the cluster CIDR "
                "(kube-controller-manager --cluster-cidr): every Node's spec.podCIDR must lie in it"
            )
        try:
            resolve_plan(self)
        except AddressPlanError as exc:
            raise ValueError(str(exc)) from exc
        return self


class IPAMConfig(AddressPlanConfig):
    """Settings of the ``ipam`` plugin."""

    state_file: Path = Path("/var/lib/contiv/ipam-allocations.json")
    """Local crash-safe copy of this node's pod IP allocations (written on every change)."""

    fsync_directory: bool = True
    """Also fsync the state file's directory after each rename, so a power loss cannot roll the
    file back to its previous version (costs one more disk flush per change; a killed agent
    loses nothing either way)."""

    release_grace_s: float = Field(300.0, ge=0)
    """An allocation whose pod is neither wired on this node nor known to Kubernetes is
    released once it has been missing for this many seconds."""

    stale_check_interval_s: float = Field(30.0, gt=0)
    """How often allocations are checked for pods that no longer exist."""

    etcd_retry_initial_s: float = Field(0.2, gt=0)
    """First back-off delay when pushing an allocation change to etcd fails."""

    etcd_retry_max_s: float = Field(10.0, gt=0)
    """Longest back-off delay between attempts to push an allocation change to etcd."""

    pod_cidr_wait_s: float = Field(5.0, ge=0, le=10)
    """``pod_subnet_source: kubernetes``: how long start-up waits for this node's reflected Node
    to carry ``spec.podCIDR``. After that the agent starts anyway, not ready ("waiting for Node
    <name> spec.podCIDR") and wiring no pod, and takes the subnet as soon as the Node has one.
    At most 10 s: the whole ``init`` of a plugin must finish within the agent's start timeout."""
