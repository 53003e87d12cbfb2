"""The address plan: Contiv's defaults and examples, validation errors, and properties."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from plugins.ipam.config import AddressPlanConfig, IPAMConfig
from plugins.ipam.plan import (
    AddressPlanError,
    dissect_subnet_for_node,
    nat_loopback_ip,
    node_id_from_pod_ip,
    node_interconnect_ip,
    node_plan,
    pod_capacity,
    pod_index_range,
    pod_ip_for_index,
    resolve_plan,
    split_contiv_cidr,
)


def test_defaults_match_contiv() -> None:
    plan = resolve_plan(AddressPlanConfig())
    node = node_plan(plan, 5)
    assert node.pod_subnet == IPv4Network("10.1.5.0/24")
    assert node.pod_gateway == IPv4Address("10.1.5.1")
    assert node.host_interconnect_subnet == IPv4Network("172.30.5.0/24")
    assert node.host_interconnect_vswitch == IPv4Interface("172.30.5.1/24")
    assert node.host_interconnect_host == IPv4Interface("172.30.5.2/24")
    assert node.node_ip == IPv4Interface("192.168.16.5/24")
    assert node.vxlan_ip == IPv4Interface("192.168.30.5/24")
    assert node.pod_network == IPv4Network("10.1.0.0/16")
    assert node.vxlan_network == IPv4Network("192.168.30.0/24")
    assert node.service_network == IPv4Network("10.96.0.0/12")
    assert plan.max_node_id == 254


def test_pod_range_of_a_24_is_2_to_253_with_nat_loopback_254() -> None:
    subnet = IPv4Network("10.1.5.0/24")
    assert pod_capacity(subnet) == 252
    assert pod_ip_for_index(subnet, pod_index_range(subnet)[0]) == IPv4Address("10.1.5.2")
    assert pod_ip_for_index(subnet, pod_index_range(subnet)[-1]) == IPv4Address("10.1.5.253")
    assert nat_loopback_ip(subnet) == IPv4Address("10.1.5.254")
    assert pod_capacity(IPv4Network("10.1.5.0/28")) == 12


def test_node_id_equal_to_block_count_wraps_to_block_zero() -> None:
    cidr = IPv4Network("10.1.0.0/16")
    assert dissect_subnet_for_node(cidr, 24, 256) == IPv4Network("10.1.0.0/24")
    with pytest.raises(AddressPlanError, match="does not fit"):
        dissect_subnet_for_node(cidr, 24, 257)
    with pytest.raises(AddressPlanError, match="must be longer"):
        dissect_subnet_for_node(cidr, 16, 1)


def test_default_gateway_is_skipped_by_node_addresses() -> None:
    cidr = IPv4Network("192.168.16.0/24")
    gateway = IPv4Address("192.168.16.3")
    got = [node_interconnect_ip(cidr, n, gateway).ip for n in range(1, 6)]
    assert got == [IPv4Address(f"192.168.16.{i}") for i in (1, 2, 4, 5, 6)]
    plan = resolve_plan(AddressPlanConfig(default_gateway=gateway))
    assert plan.max_node_id == 253
    assert node_plan(plan, 253).node_ip == IPv4Interface("192.168.16.254/24")


def test_contiv_cidr_split() -> None:
    pods, hosts, nodes, vxlan = split_contiv_cidr(IPv4Network("10.128.0.0/14"))
    assert (pods, hosts, nodes, vxlan) == (
        IPv4Network("10.128.0.0/16"),
        IPv4Network("10.129.0.0/16"),
        IPv4Network("10.130.0.0/23"),
        IPv4Network("10.130.2.0/23"),
    )
    plan = resolve_plan(AddressPlanConfig(contiv_cidr=IPv4Network("10.128.0.0/14")))
    node = node_plan(plan, 3)
    assert node.pod_subnet == IPv4Network("10.128.1.128/25")
    assert node.node_ip == IPv4Interface("10.130.0.3/23")
    # An explicit node interconnect CIDR is kept.
    explicit = resolve_plan(
        AddressPlanConfig(
            contiv_cidr=IPv4Network("10.128.0.0/14"), node_interconnect_cidr=IPv4Network("192.168.1.0/24")
        )
    )
    assert explicit.node_interconnect_cidr == IPv4Network("192.168.1.0/24")


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"pod_subnet_cidr": "10.96.0.0/16"}, "pod_subnet_cidr 10.96.0.0/16 overlaps service_cidr"),
        ({"vxlan_cidr": "192.168.16.0/25"}, "node_interconnect_cidr 192.168.16.0/24 overlaps vxlan_cidr"),
        ({"pod_subnet_one_node_prefix_len": 16}, "pod_subnet_one_node_prefix_len /16 must be longer"),
        ({"pod_subnet_one_node_prefix_len": 30}, "less than or equal to 29"),
        ({"contiv_cidr": "10.0.0.0/16"}, "contiv_cidr 10.0.0.0/16 is too small"),
        ({"pod_subnet_cidr": "10.1.0.1/16"}, "pod_subnet_cidr\n  Input is not a valid IPv4 network"),
        ({"default_gateway": "192.168.16.255"}, "default_gateway 192.168.16.255 is not a host address"),
        ({"podSubnetCIDR": "10.1.0.0/16"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_fail_with_a_message_naming_the_key(settings_: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        IPAMConfig.model_validate(settings_)
    assert message in str(info.value)


def test_node_id_outside_the_plan_is_an_error() -> None:
    plan = resolve_plan(AddressPlanConfig())
    with pytest.raises(AddressPlanError, match=r"node ID 255 is outside the plan's range 1\.\.254"):
        node_plan(plan, 255)
    with pytest.raises(AddressPlanError, match="node ID 0"):
        node_plan(plan, 0)


@st.composite
def plans(draw: st.DrawFn) -> AddressPlanConfig:
    """Valid plans: a pod CIDR in 10/8, host CIDR in 172.16/12, node and VXLAN CIDRs in 192.168/16."""
    pod_len = draw(st.integers(8, 24))
    pod_node_len = draw(st.integers(pod_len + 1, min(pod_len + 10, 29)))
    pod_base = draw(st.integers(0, (1 << (pod_len - 8)) - 1)) << (32 - pod_len)
    host_len = draw(st.integers(12, 24))
    host_node_len = draw(st.integers(host_len + 1, min(host_len + 10, 30)))
    host_base = draw(st.integers(0, (1 << (host_len - 12)) - 1)) << (32 - host_len)
    node_len = draw(st.integers(20, 28))
    vxlan_len = draw(st.integers(20, 28))
    return AddressPlanConfig(
        pod_subnet_cidr=IPv4Network((int(IPv4Address("10.0.0.0")) + pod_base, pod_len)),
        pod_subnet_one_node_prefix_len=pod_node_len,
        vpp_host_subnet_cidr=IPv4Network((int(IPv4Address("172.16.0.0")) + host_base, host_len)),
        vpp_host_subnet_one_node_prefix_len=host_node_len,
        node_interconnect_cidr=IPv4Network(("192.168.0.0", node_len)),
        vxlan_cidr=IPv4Network(("192.168.128.0", vxlan_len)),
        service_cidr=IPv4Network("100.64.0.0/12"),
    )


@settings(max_examples=60, deadline=None)
@given(plans(), st.data())
def test_every_node_plan_is_consistent(config: AddressPlanConfig, data: st.DataObject) -> None:
    plan = resolve_plan(config)
    node_id = data.draw(st.integers(1, plan.max_node_id))
    node = node_plan(plan, node_id)
    assert node.pod_subnet.subnet_of(plan.pod_subnet_cidr)
    assert node.pod_subnet.prefixlen == plan.pod_subnet_one_node_prefix_len
    assert node.pod_gateway in node.pod_subnet
    assert node.pod_gateway not in (node.pod_subnet.network_address, node.pod_subnet.broadcast_address)
    indexes = pod_index_range(node.pod_subnet)
    assert len(indexes) == pod_capacity(node.pod_subnet) == node.pod_subnet.num_addresses - 4
    # The ends of the pod range and a drawn index inside it (a /9 node subnet has 8M addresses).
    sample = {indexes[0], indexes[-1], data.draw(st.sampled_from(indexes))}
    pods = [pod_ip_for_index(node.pod_subnet, i) for i in sorted(sample)]
    assert node.pod_gateway not in pods and nat_loopback_ip(node.pod_subnet) not in pods
    assert all(ip in node.pod_subnet and ip != node.pod_subnet.broadcast_address for ip in pods)
    assert node.host_interconnect_subnet.subnet_of(plan.vpp_host_subnet_cidr)
    assert node.host_interconnect_vswitch.ip in node.host_interconnect_subnet
    assert node.host_interconnect_host.ip in node.host_interconnect_subnet
    assert node.node_ip.ip in plan.node_interconnect_cidr
    nodes = plan.node_interconnect_cidr
    assert node.node_ip.ip not in (nodes.network_address, nodes.broadcast_address)
    assert node.vxlan_ip.ip in plan.vxlan_cidr
    assert node.vxlan_ip.ip != plan.vxlan_cidr.broadcast_address
    assert node_id_from_pod_ip(plan, pods[0]) == node_id


@settings(max_examples=40, deadline=None)
@given(plans(), st.data())
def test_no_two_nodes_share_a_subnet_or_address(config: AddressPlanConfig, data: st.DataObject) -> None:
    plan = resolve_plan(config)
    ids = data.draw(st.lists(st.integers(1, plan.max_node_id), min_size=2, max_size=8, unique=True))
    nodes = [node_plan(plan, i) for i in ids]
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            assert not a.pod_subnet.overlaps(b.pod_subnet)
            assert not a.host_interconnect_subnet.overlaps(b.host_interconnect_subnet)
            assert a.node_ip.ip != b.node_ip.ip
            assert a.vxlan_ip.ip != b.vxlan_ip.ip


@settings(max_examples=40, deadline=None)
@given(plans(), st.data())
def test_default_gateway_never_given_to_a_node(config: AddressPlanConfig, data: st.DataObject) -> None:
    cidr = resolve_plan(config).node_interconnect_cidr
    gateway = cidr.network_address + data.draw(st.integers(1, cidr.num_addresses - 2))
    plan = resolve_plan(config.model_copy(update={"default_gateway": gateway}))
    ips = [node_plan(plan, i).node_ip.ip for i in range(1, plan.max_node_id + 1)]
    assert gateway not in ips
    assert len(set(ips)) == len(ips)
