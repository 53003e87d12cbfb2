"""Contiv's address plan as pure functions (reference: contiv.md section 3.3).

Every address of a node is derived from its node ID, so IPAMs on different nodes never need to
talk to each other:

* pod subnet of node N: block N of size ``/pod_subnet_one_node_prefix_len`` in the pod CIDR
  (block ``2**new_bits`` wraps to block 0), gateway = first host, last unicast address
  reserved (Contiv's NAT loopback), pods get the addresses in between;
* host interconnect of node N: block N of the host CIDR, vswitch end = host #1, host end = #2;
* node dataplane IP: host #N of the node interconnect CIDR (skipping a default gateway that
  lies inside it); VXLAN BVI IP: host #N of the VXLAN CIDR;
* ``contiv_cidr``: one CIDR with at least 18 host bits split into all of the above;
* ``pod_subnet_source: kubernetes``: the pod subnet of a node is its Node's ``spec.podCIDR``
  instead (:func:`node_pod_subnet` validates it against the cluster CIDR, :func:`with_pod_subnet`
  puts it into the node's plan); everything else stays derived from the node ID.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_network
from itertools import combinations
from typing import TYPE_CHECKING

from plugins.ipam.api import IPAMError, NodeAddressPlan

if TYPE_CHECKING:
    from plugins.ipam.config import AddressPlanConfig

DEFAULT_NODE_INTERCONNECT_CIDR = IPv4Network("192.168.16.0/24")
#: ``contiv_cidr`` needs this many host bits (two /16 blocks plus the two /23 blocks).
CONTIV_CIDR_MIN_FREE_BITS = 18
CONTIV_CIDR_ONE_NODE_PREFIX_LEN = 25
#: First pod address index in a node subnet (0 is the network address, 1 the gateway).
FIRST_POD_INDEX = 2


#: ``pod_subnet_source`` values.
SOURCE_PLAN = "plan"
SOURCE_KUBERNETES = "kubernetes"
#: The longest pod subnet a node may have (gateway, two pods, NAT loopback and broadcast).
LONGEST_POD_SUBNET_PREFIX = 29


class AddressPlanError(IPAMError, ValueError):
    """The address plan settings are inconsistent, or a node ID does not fit the plan."""


class NodePodCIDRError(AddressPlanError):
    """A Node's ``spec.podCIDR`` cannot be used (not a CIDR, not IPv4, outside the cluster CIDR)."""


class NodePodCIDRMissingError(NodePodCIDRError):
    """A Node has no ``spec.podCIDR`` (yet)."""


@dataclass(frozen=True, slots=True)
class ResolvedPlan:
    """The cluster-wide networks after applying defaults and the ``contiv_cidr`` split."""

    pod_subnet_cidr: IPv4Network
    pod_subnet_one_node_prefix_len: int
    vpp_host_subnet_cidr: IPv4Network
    vpp_host_subnet_one_node_prefix_len: int
    node_interconnect_cidr: IPv4Network
    vxlan_cidr: IPv4Network
    service_cidr: IPv4Network
    default_gateway: IPv4Address | None
    #: The largest node ID every part of the plan has room for (IDs run from 1).
    max_node_id: int
    #: ``plan`` (pod subnet = block <node ID>) or ``kubernetes`` (the Node's spec.podCIDR).
    pod_subnet_source: str = SOURCE_PLAN


def dissect_subnet_for_node(cidr: IPv4Network, one_node_prefix_len: int, node_id: int) -> IPv4Network:
    """Block ``node_id`` of size ``/one_node_prefix_len`` inside ``cidr`` (Contiv's scheme).

    ``node_id == 2**new_bits`` wraps to block 0; larger IDs do not fit.
    """
    new_bits = one_node_prefix_len - cidr.prefixlen
    if new_bits <= 0:
        raise AddressPlanError(
            f"per-node prefix length /{one_node_prefix_len} must be longer than the prefix of {cidr}"
        )
    blocks = 1 << new_bits
    if node_id < 0 or node_id > blocks:
        raise AddressPlanError(
            f"node ID {node_id} does not fit {cidr} split into /{one_node_prefix_len} blocks "
            f"(room for IDs 1..{blocks})"
        )
    block = node_id % blocks
    base = int(cidr.network_address) + (block << (32 - one_node_prefix_len))
    return IPv4Network((base, one_node_prefix_len))


def host_address(network: IPv4Network, index: int) -> IPv4Address:
    """The ``index``-th address of ``network`` (0 is the network address itself)."""
    if index < 0 or index >= network.num_addresses:
        raise AddressPlanError(f"{network} has no address number {index}")
    return network.network_address + index


def _node_host_index(cidr: IPv4Network, node_id: int, gateway: IPv4Address | None) -> int:
    """Index of node ``node_id``'s address in ``cidr``, skipping a gateway inside it."""
    host_bits = 32 - cidr.prefixlen
    index = node_id & ((1 << host_bits) - 1)
    if index == 0:
        raise AddressPlanError(f"no free address for node ID {node_id} in {cidr}")
    if gateway is not None and gateway in cidr and int(gateway) <= int(cidr.network_address) + index:
        index += 1
    if index >= cidr.num_addresses - 1:
        raise AddressPlanError(f"no free address for node ID {node_id} in {cidr} (past its last host)")
    return index


def node_interconnect_ip(cidr: IPv4Network, node_id: int, gateway: IPv4Address | None = None) -> IPv4Interface:
    """Node ``node_id``'s dataplane address: host #node_id of ``cidr``, the gateway skipped."""
    index = _node_host_index(cidr, node_id, gateway)
    return IPv4Interface((int(cidr.network_address) + index, cidr.prefixlen))


def vxlan_ip(cidr: IPv4Network, node_id: int) -> IPv4Interface:
    """Node ``node_id``'s VXLAN BVI address: host #node_id of ``cidr``."""
    index = _node_host_index(cidr, node_id, None)
    return IPv4Interface((int(cidr.network_address) + index, cidr.prefixlen))


def pod_gateway(node_subnet: IPv4Network) -> IPv4Address:
    """The pods' gateway: first host of the node's pod subnet."""
    return host_address(node_subnet, 1)


def nat_loopback_ip(node_subnet: IPv4Network) -> IPv4Address:
    """The reserved last unicast address of the node's pod subnet (Contiv's NAT loopback)."""
    return host_address(node_subnet, node_subnet.num_addresses - 2)


def pod_index_range(node_subnet: IPv4Network) -> range:
    """The address indexes pods may get in ``node_subnet`` (gateway and NAT loopback excluded)."""
    return range(FIRST_POD_INDEX, node_subnet.num_addresses - 2)


def pod_capacity(node_subnet: IPv4Network) -> int:
    """How many pods fit into ``node_subnet`` (252 for a /24, 12 for a /28)."""
    return len(pod_index_range(node_subnet))


def pod_ip_for_index(node_subnet: IPv4Network, index: int) -> IPv4Address:
    """The pod address with sequence ``index`` in ``node_subnet``."""
    if index not in pod_index_range(node_subnet):
        raise AddressPlanError(f"index {index} is not a pod address index of {node_subnet}")
    return node_subnet.network_address + index


def pod_index_of(node_subnet: IPv4Network, ip: IPv4Address) -> int | None:
    """The sequence index of ``ip`` in ``node_subnet``, or None when it is not a pod address."""
    if ip not in node_subnet:
        return None
    index = int(ip) - int(node_subnet.network_address)
    return index if index in pod_index_range(node_subnet) else None


def split_contiv_cidr(cidr: IPv4Network) -> tuple[IPv4Network, IPv4Network, IPv4Network, IPv4Network]:
    """Contiv's ``contivCIDR`` split: (pod CIDR, host CIDR, node interconnect CIDR, VXLAN CIDR).

    Pods get /16 block #0 and the host interconnect /16 block #1 (both split per node into /25);
    node interconnect and VXLAN get the 512-address blocks #256 and #257.
    """
    if 32 - cidr.prefixlen < CONTIV_CIDR_MIN_FREE_BITS:
        raise AddressPlanError(
            f"contiv_cidr {cidr} is too small: it needs at least {CONTIV_CIDR_MIN_FREE_BITS} free "
            f"bits (prefix /{32 - CONTIV_CIDR_MIN_FREE_BITS} or shorter)"
        )
    base = int(cidr.network_address)
    pods = IPv4Network((base, 16))
    hosts = IPv4Network((base + (1 << 16), 16))
    nodes = IPv4Network((base + 256 * 512, 23))
    vxlan = IPv4Network((base + 257 * 512, 23))
    return pods, hosts, nodes, vxlan


def _check_per_node(key: str, cidr: IPv4Network, prefix_len: int, longest: int) -> int:
    """Validate one per-node split; return how many node blocks it has."""
    if prefix_len <= cidr.prefixlen:
        raise AddressPlanError(
            f"{key}_one_node_prefix_len /{prefix_len} must be longer than the prefix of {key}_cidr {cidr}"
        )
    if prefix_len > longest:
        raise AddressPlanError(f"{key}_one_node_prefix_len /{prefix_len} is too long (at most /{longest})")
    return 1 << (prefix_len - cidr.prefixlen)


def resolve_plan(config: AddressPlanConfig) -> ResolvedPlan:
    """Apply defaults and the ``contiv_cidr`` split, and validate the whole plan.

    Raises :class:`AddressPlanError` naming the keys involved.
    """
    pods, pod_len = config.pod_subnet_cidr, config.pod_subnet_one_node_prefix_len
    hosts, host_len = config.vpp_host_subnet_cidr, config.vpp_host_subnet_one_node_prefix_len
    nodes = config.node_interconnect_cidr
    vxlan = config.vxlan_cidr
    if config.contiv_cidr is not None:
        pods, hosts, split_nodes, vxlan = split_contiv_cidr(config.contiv_cidr)
        pod_len = host_len = CONTIV_CIDR_ONE_NODE_PREFIX_LEN
        if nodes is None:
            nodes = split_nodes
    if nodes is None:
        nodes = DEFAULT_NODE_INTERCONNECT_CIDR
    from_kubernetes = config.pod_subnet_source == SOURCE_KUBERNETES
    # With Node podCIDRs the per-node pod prefix is theirs: no block of the pod CIDR per node ID.
    pod_blocks = None if from_kubernetes else _check_per_node("pod_subnet", pods, pod_len, LONGEST_POD_SUBNET_PREFIX)
    host_blocks = _check_per_node("vpp_host_subnet", hosts, host_len, 30)
    networks = {
        "pod_subnet_cidr": pods,
        "vpp_host_subnet_cidr": hosts,
        "node_interconnect_cidr": nodes,
        "vxlan_cidr": vxlan,
        "service_cidr": config.service_cidr,
    }
    for (key_a, net_a), (key_b, net_b) in combinations(networks.items(), 2):
        if net_a.overlaps(net_b):
            raise AddressPlanError(f"{key_a} {net_a} overlaps {key_b} {net_b}")
    for key in ("node_interconnect_cidr", "vxlan_cidr"):
        if networks[key].num_addresses < 4:
            raise AddressPlanError(f"{key} {networks[key]} is too small (at least a /30)")
    gateway = config.default_gateway
    if gateway is not None and gateway in nodes and gateway in (nodes.network_address, nodes.broadcast_address):
        raise AddressPlanError(f"default_gateway {gateway} is not a host address of {nodes}")
    gw_skip = 1 if gateway is not None and gateway in nodes else 0
    rooms = [host_blocks, nodes.num_addresses - 2 - gw_skip, vxlan.num_addresses - 2]
    max_node_id = min(rooms if pod_blocks is None else [pod_blocks, *rooms])
    return ResolvedPlan(
        pod_subnet_cidr=pods,
        pod_subnet_one_node_prefix_len=pod_len,
        vpp_host_subnet_cidr=hosts,
        vpp_host_subnet_one_node_prefix_len=host_len,
        node_interconnect_cidr=nodes,
        vxlan_cidr=vxlan,
        service_cidr=config.service_cidr,
        default_gateway=gateway,
        max_node_id=max_node_id,
        pod_subnet_source=config.pod_subnet_source,
    )


def node_plan(plan: ResolvedPlan, node_id: int) -> NodeAddressPlan:
    """Every address of node ``node_id`` (1..``plan.max_node_id``)."""
    if not 1 <= node_id <= plan.max_node_id:
        raise AddressPlanError(f"node ID {node_id} is outside the plan's range 1..{plan.max_node_id}")
    if plan.pod_subnet_source == SOURCE_KUBERNETES:
        # A placeholder until :func:`with_pod_subnet` puts the Node's podCIDR in: the whole pod
        # CIDR would overlap every node, so the block of the ID (if the split fits) or block 0.
        prefix = max(plan.pod_subnet_one_node_prefix_len, plan.pod_subnet_cidr.prefixlen + 1)
        blocks = 1 << (prefix - plan.pod_subnet_cidr.prefixlen)
        pod_subnet = dissect_subnet_for_node(plan.pod_subnet_cidr, prefix, node_id if node_id <= blocks else 0)
    else:
        pod_subnet = dissect_subnet_for_node(plan.pod_subnet_cidr, plan.pod_subnet_one_node_prefix_len, node_id)
    host_subnet = dissect_subnet_for_node(
        plan.vpp_host_subnet_cidr, plan.vpp_host_subnet_one_node_prefix_len, node_id
    )
    return NodeAddressPlan(
        node_id=node_id,
        pod_subnet=pod_subnet,
        pod_gateway=pod_gateway(pod_subnet),
        host_interconnect_subnet=host_subnet,
        host_interconnect_vswitch=IPv4Interface((host_address(host_subnet, 1), host_subnet.prefixlen)),
        host_interconnect_host=IPv4Interface((host_address(host_subnet, 2), host_subnet.prefixlen)),
        node_ip=node_interconnect_ip(plan.node_interconnect_cidr, node_id, plan.default_gateway),
        vxlan_ip=vxlan_ip(plan.vxlan_cidr, node_id),
        pod_network=plan.pod_subnet_cidr,
        vxlan_network=plan.vxlan_cidr,
        service_network=plan.service_cidr,
    )


def node_id_from_pod_ip(plan: ResolvedPlan, ip: IPv4Address) -> int | None:
    """The ID of the node whose pod subnet holds ``ip`` (None outside the pod CIDR).

    Block 0 belongs to the node with ID ``2**new_bits`` (the wrap-around of
    :func:`dissect_subnet_for_node`). With ``pod_subnet_source: kubernetes`` a pod IP says nothing
    about the node ID: :class:`AddressPlanError`.
    """
    if plan.pod_subnet_source == SOURCE_KUBERNETES:
        raise AddressPlanError("with pod_subnet_source kubernetes a pod IP does not encode its node ID "
                               "(look the IP up in the Node podCIDRs)")
    if ip not in plan.pod_subnet_cidr:
        return None
    offset = int(ip) ^ int(plan.pod_subnet_cidr.network_address)
    block = offset >> (32 - plan.pod_subnet_one_node_prefix_len)
    if block == 0:
        return 1 << (plan.pod_subnet_one_node_prefix_len - plan.pod_subnet_cidr.prefixlen)
    return block


def node_pod_subnet(node_name: str, pod_cidr: str, pod_cidrs: Sequence[str], cluster_cidr: IPv4Network) -> IPv4Network:
    """The pod subnet of Node ``node_name`` from its ``spec.podCIDR`` / ``spec.podCIDRs``.

    The first IPv4 CIDR among them (dual-stack Nodes list an IPv6 one too). Raises
    :class:`NodePodCIDRMissingError` when the Node has none yet, :class:`NodePodCIDRError` naming
    the node and both CIDRs when it is not a usable subnet of ``cluster_cidr``.
    """
    texts = [text for text in dict.fromkeys([pod_cidr, *pod_cidrs]) if text]
    if not texts:
        raise NodePodCIDRMissingError(f"Node {node_name} has no spec.podCIDR")
    subnet: IPv4Network | None = None
    for text in texts:
        try:
            network = ip_network(text, strict=True)
        except ValueError as exc:
            raise NodePodCIDRError(f"Node {node_name} spec.podCIDR {text!r} is not a CIDR: {exc}") from exc
        if isinstance(network, IPv4Network):
            subnet = network
            break
    if subnet is None:
        raise NodePodCIDRError(f"Node {node_name} has no IPv4 spec.podCIDR (podCIDRs {', '.join(texts)}); "
                               "pods are IPv4 only")
    if not subnet.subnet_of(cluster_cidr):
        raise NodePodCIDRError(f"Node {node_name} spec.podCIDR {subnet} is outside the cluster pod CIDR "
                               f"{cluster_cidr} (ipam.pod_subnet_cidr)")
    if subnet.prefixlen > LONGEST_POD_SUBNET_PREFIX:
        raise NodePodCIDRError(f"Node {node_name} spec.podCIDR {subnet} is too small for pods "
                               f"(at most /{LONGEST_POD_SUBNET_PREFIX})")
    return subnet


def with_pod_subnet(plan: NodeAddressPlan, pod_subnet: IPv4Network) -> NodeAddressPlan:
    """``plan`` with ``pod_subnet`` as the node's pod subnet (and its first host as gateway)."""
    return replace(plan, pod_subnet=pod_subnet, pod_gateway=pod_gateway(pod_subnet))
