"""Settings of the ipnet plugin (YAML section ``ipnet``)."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.plugin import PluginConfig
from plugins.ipnet.intent import DEFAULT_MTU, DEFAULT_VNI


class VppRenderSettings(BaseModel):
    """Settings of the VPP rendering (section ``vpp`` of ipnet's config)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    pod_interface: Literal["auto", "tap", "veth"] = "auto"
    """``tap``: a VPP TAP v2 per pod (needs /dev/vhost-net); ``veth``: a veth pair and an af_packet
    interface (Contiv's ``useTAPInterfaces: false``); ``auto``: ``tap`` where the agent sees
    /dev/vhost-net, else ``veth`` (decided once, when the renderer is made)."""

    vhost_net: str = Field("/dev/vhost-net", min_length=1)
    """Where ``pod_interface: auto`` looks for the vhost-net character device, as the agent sees
    it (a container without host devices sees none: mount the host's ``/dev`` and point here)."""

    af_packet_offload: bool = True
    """The pods' and the host interconnect's af_packet interfaces exchange a virtio-net header
    with the kernel (``af_packet_create_v3`` flag ``CKSUM_GSO``): partial checksums pass both
    ways and VPP completes them where needed, so the pods' ``eth0`` and ``vpp1`` keep transmit
    checksum offload on. ``false``: no header, transmit checksum offload off on them instead. A
    ``host-<nic>`` main interface never gets the header (VPP 26.10 hands the kernel a VXLAN
    frame with the inner packet's checksum offsets, which the kernel refuses)."""

    af_packet_gso: bool = False
    """With ``af_packet_offload``: leave TCP/generic segmentation offload on the pods' ``eth0``
    and ``vpp1``, so 64 KiB TCP frames reach VPP and pass between af_packet interfaces whole
    (same-node pod traffic about 4x faster). Off by default: VPP 26.10's segmentation of such
    frames on their way into the VXLAN mesh leaves the inner IP length unchanged and the other
    node drops them, so traffic between nodes breaks; only for nodes without pod traffic over
    VXLAN. ``false``: segmentation offload off on them (the kernel sends MTU-sized segments)."""

    af_packet_qdisc_bypass: bool = True
    """VPP's af_packet transmits skip the Linux qdisc of the veth end (``QDISC_BYPASS``)."""

    main_interface: str = ""
    """VPP name of the node's NIC (e.g. ``GigabitEthernet0/8/0``), adopted as it is; or
    ``host-<nic>``: the Linux NIC ``<nic>`` in VPP's namespace, attached through af_packet by the
    agent (an af_packet made on it by hand before is taken over); "" = a loopback, as Contiv."""

    pod_vrf: int = Field(1, ge=1)
    """The VRF (FIB table) of pods."""

    host_network: IPv4Network = IPv4Network("172.30.0.0/16")
    """The whole VPP-host interconnect network (all nodes' host subnets)."""

    host_ifname: str = Field("vpp1", min_length=1, max_length=15)
    """Linux name of the node side of the host interconnect."""

    vpp_side_ifname: str = Field("vpp2", min_length=1, max_length=15)
    """Linux name of VPP's end of the interconnect veth (``veth`` mode only)."""

    veth_prefix: str = Field("cv", min_length=1, max_length=5)
    """Prefix of the node-side veth end of each pod (``veth`` mode)."""

    nat: bool = True
    """NAT44 for services (Contiv's ``natExternalTraffic``): the plugin, the node address as SNAT
    pool (output feature on the main interface), the NAT loopback address as twice-NAT pool,
    identity mappings for VXLAN and the node address, NAT inside/outside on the pod, BVI and
    host-interconnect interfaces. The mappings themselves come from the service renderer."""


class IPNetConfig(PluginConfig):
    """Pod and node connectivity."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)

    dataplane: Literal["linux", "vpp"] = "linux"
    """Which renderer realises the intent: ``linux`` (kernel veth + routes, the default) or
    ``vpp``."""

    nooverlay: bool = False
    """Reach other nodes' pods with plain routes via their node IPs instead of VXLAN (the
    nodes must share an L2 segment)."""

    vni: int = Field(DEFAULT_VNI, ge=1, lt=1 << 24)
    """VXLAN network identifier of the node mesh."""

    mtu: int = Field(DEFAULT_MTU, ge=576, le=65535)
    """MTU of pod interfaces and of the VXLAN device (leave room for 50 bytes of VXLAN)."""

    vpp: VppRenderSettings = Field(default_factory=VppRenderSettings)
    """How the ``vpp`` renderer lays out pods and the node (used with ``dataplane: vpp``)."""

    node_namespace: str = ""
    """Network namespace (name or absolute path) that plays the node for the ``linux``
    renderer; empty: the agent's own namespace (normal operation)."""

    @field_validator("node_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value and "/" in value and not value.startswith("/"):
            raise ValueError(f"node_namespace {value!r} must be a name or an absolute path")
        return value

    stn: bool = False
    """Steal The NIC (``dataplane: vpp`` only): at start the agent asks contiv-stn for the
    node's only NIC (``stn_interface``), gives it to VPP with the node's address, and keeps the
    host reachable through the host interconnect (see docs/stn.md)."""

    stn_interface: str = Field(default="", max_length=15)
    """Linux name of the NIC contiv-stn steals for VPP (required with ``stn: true``)."""

    stn_socket: str = Field(default="/var/run/contiv/stn.sock", min_length=1)
    """contiv-stn's gRPC socket."""

    stn_timeout_s: float = Field(default=30.0, gt=0)
    """How long the agent's start waits for contiv-stn to answer."""

    @model_validator(mode="after")
    def _stn_mode(self) -> IPNetConfig:
        if self.stn and self.dataplane != "vpp":
            raise ValueError(
                f"stn: true needs dataplane: vpp (dataplane is {self.dataplane!r}: the Linux kernel "
                "already owns the NIC, there is nothing to steal)"
            )
        if self.stn and not self.stn_interface:
            raise ValueError("stn: true needs stn_interface, the Linux name of the NIC to steal")
        return self
