"""The stand-in speaks VPP's socket protocol to vpp_papi and rejects what VPP rejects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vpp_papi import VPPApiClient

from plugins.vpp.descriptors.base import EMPTY_LABEL_STACK
from tests.vppstub import VPPStub, default_api_dir

NO_INDEX = 0xFFFFFFFF


@pytest.fixture
def papi(stub: VPPStub) -> Iterator[VPPApiClient]:
    client = VPPApiClient(apidir=[default_api_dir()], use_socket=True, server_address=stub.socket_path, read_timeout=2)
    client.connect("stub-test")
    try:
        yield client
    finally:
        client.disconnect()


def test_handshake_message_table_and_version(papi: VPPApiClient, stub: VPPStub) -> None:
    table = papi.transport.message_table
    assert table["sockclnt_create_" + stub.catalog.messages["sockclnt_create"].crc[2:]] == 15
    assert len(table) == len(stub.catalog.messages)
    assert papi.api.show_version().version.startswith("26.10")
    assert papi.api.control_ping().vpe_pid == stub.pid


def test_interface_lifecycle_and_dumps(papi: VPPApiClient) -> None:
    loop = papi.api.create_loopback_instance(
        mac_address="02:00:00:00:00:01", is_specified=False, user_instance=NO_INDEX
    )
    assert loop.retval == 0
    assert papi.api.sw_interface_tag_add_del(is_add=True, sw_if_index=loop.sw_if_index, tag="cv:l").retval == 0
    assert papi.api.sw_interface_set_flags(sw_if_index=loop.sw_if_index, flags=1).retval == 0
    assert (
        papi.api.sw_interface_add_del_address(sw_if_index=loop.sw_if_index, is_add=True, prefix="10.1.1.1/24").retval
        == 0
    )
    (details,) = [d for d in papi.api.sw_interface_dump(sw_if_index=NO_INDEX) if d.sw_if_index == loop.sw_if_index]
    assert (details.interface_name, details.tag, str(details.l2_address), int(details.flags)) == (
        "loop0",
        "cv:l",
        "02:00:00:00:00:01",
        3,
    )
    routes = {str(r.route.prefix): r.route for r in papi.api.ip_route_dump(table={"table_id": 0, "is_ip6": False})}
    assert int(routes["10.1.1.1/32"].paths[0].type) == 1  # local
    assert routes["10.1.1.0/24"].paths[0].sw_if_index == loop.sw_if_index  # connected
    assert int(routes["0.0.0.0/0"].paths[0].type) == 2  # VPP's default drop
    assert papi.api.delete_loopback(sw_if_index=loop.sw_if_index).retval == 0
    assert papi.api.sw_interface_dump(sw_if_index=loop.sw_if_index) == []


@pytest.mark.parametrize(
    ("message", "kwargs", "retval"),
    [
        ("sw_interface_set_flags", {"sw_if_index": 42, "flags": 1}, -2),
        ("sw_interface_tag_add_del", {"is_add": True, "sw_if_index": 0, "tag": ""}, -7),
        ("bridge_domain_add_del_v2", {"bd_id": 0, "is_add": True}, -121),
        ("bridge_domain_add_del_v2", {"bd_id": 7, "is_add": False}, -6),
        ("af_packet_create_v3", {"mode": 1, "host_if_name": "no-such-if0"}, -71),
        ("af_packet_create_v3", {"mode": 1, "host_if_name": ""}, -73),
        ("vxlan_add_del_tunnel_v3", {"src_address": "1.1.1.1", "dst_address": "1.1.1.1", "vni": 10}, -82),
        (
            "vxlan_add_del_tunnel_v3",
            {"src_address": "1.1.1.1", "dst_address": "1.1.1.2", "vni": 10, "encap_vrf_id": 5},
            -3,
        ),
        ("sw_interface_set_table", {"sw_if_index": 0, "vrf_id": 9}, -3),
        ("ip_neighbor_add_del", {"is_add": False, "neighbor": {"sw_if_index": 0, "ip_address": "1.2.3.4"}}, -6),
        ("l2fib_add_del", {"bd_id": 3, "mac": "02:00:00:00:00:09", "sw_if_index": 0, "is_add": True}, -6),
        ("sw_interface_add_del_address", {"sw_if_index": 0, "is_add": False, "prefix": "10.0.0.1/24"}, -60),
    ],
)
def test_rejects_like_vpp(papi: VPPApiClient, message: str, kwargs: dict[str, object], retval: int) -> None:
    assert getattr(papi.api, message)(**kwargs).retval == retval


def test_duplicates_are_rejected(papi: VPPApiClient) -> None:
    assert papi.api.bridge_domain_add_del_v2(bd_id=5, is_add=True, bd_tag="cv:x").retval == 0
    assert papi.api.bridge_domain_add_del_v2(bd_id=5, is_add=True).retval == -119
    tunnel = {"src_address": "192.168.16.1", "dst_address": "192.168.16.2", "vni": 10, "instance": NO_INDEX}
    assert papi.api.vxlan_add_del_tunnel_v3(is_add=True, **tunnel).retval == 0
    assert papi.api.vxlan_add_del_tunnel_v3(is_add=True, **tunnel).retval == -75
    loop = papi.api.create_loopback_instance(is_specified=True, user_instance=3)
    assert papi.api.create_loopback_instance(is_specified=True, user_instance=3).retval == -147
    assert papi.api.sw_interface_set_l2_bridge(rx_sw_if_index=loop.sw_if_index, bd_id=5, port_type=1).retval == 0
    other = papi.api.create_loopback_instance(is_specified=False, user_instance=NO_INDEX)
    assert papi.api.sw_interface_set_l2_bridge(rx_sw_if_index=other.sw_if_index, bd_id=5, port_type=1).retval == -152
    assert papi.api.bridge_domain_add_del_v2(bd_id=5, is_add=False).retval == -120


def test_vrf_order_and_routes(papi: VPPApiClient) -> None:
    loop = papi.api.create_loopback_instance(is_specified=False, user_instance=NO_INDEX)
    papi.api.sw_interface_add_del_address(sw_if_index=loop.sw_if_index, is_add=True, prefix="10.2.0.1/24")
    papi.api.ip_table_add_del(is_add=True, table={"table_id": 4, "name": "cv:t"})
    # an interface with addresses cannot change its table
    assert papi.api.sw_interface_set_table(sw_if_index=loop.sw_if_index, vrf_id=4).retval == -114
    drop = {"sw_if_index": NO_INDEX, "type": 2, "label_stack": EMPTY_LABEL_STACK}
    route = {"table_id": 4, "prefix": "10.9.0.0/16", "n_paths": 1, "paths": [drop]}
    assert papi.api.ip_route_add_del(is_add=True, route=route).retval == 0
    assert papi.api.ip_route_add_del(is_add=True, route={**route, "table_id": 8}).retval == -3
    dumped = [str(r.route.prefix) for r in papi.api.ip_route_dump(table={"table_id": 4})]
    assert "10.9.0.0/16" in dumped
    assert [t.table.name for t in papi.api.ip_table_dump()] == ["ipv4-VRF:0", "cv:t"]


def test_tap_needs_vhost_net_and_namespace(papi: VPPApiClient, stub: VPPStub) -> None:
    assert (
        papi.api.tap_create_v3(
            host_if_name_set=True, host_if_name="x", host_namespace_set=True, host_namespace="no-ns-here"
        ).retval
        == -12
    )
    stub.options.vhost_net = False
    assert papi.api.tap_create_v3(host_if_name_set=True, host_if_name="x").retval == -11


def test_failure_injection_and_restart(papi: VPPApiClient, stub: VPPStub) -> None:
    stub.fail_next("create_loopback_instance", -13, times=1)
    assert papi.api.create_loopback_instance().retval == -13
    assert papi.api.create_loopback_instance().retval == 0
    assert len(stub.state.interfaces) == 2
    with pytest.raises(ValueError, match="unknown VPP message"):
        stub.fail_next("no_such_message")
    old_pid = stub.pid
    stub.restart()
    assert stub.pid != old_pid
    assert list(stub.state.interfaces) == [0]  # only local0 survives a restart
    with pytest.raises(OSError):
        papi.api.control_ping()


def test_acl_rejections(papi: VPPApiClient) -> None:
    rule = {"is_permit": 1, "src_prefix": "0.0.0.0/0", "dst_prefix": "10.0.0.0/8", "proto": 6}
    assert papi.api.acl_add_replace(acl_index=5, tag="x", count=1, r=[rule]).retval == -6
    acl = papi.api.acl_add_replace(acl_index=NO_INDEX, tag="x", count=1, r=[rule])
    assert acl.retval == 0
    mixed = {**rule, "dst_prefix": "fd00::/8"}
    assert papi.api.acl_add_replace(acl_index=NO_INDEX, tag="y", count=1, r=[mixed]).retval == -7
    assert papi.api.acl_interface_set_acl_list(sw_if_index=0, count=1, n_input=1, acls=[99]).retval == -6
    assert papi.api.acl_interface_set_acl_list(sw_if_index=0, count=1, n_input=1, acls=[acl.acl_index]).retval == 0
    assert papi.api.acl_del(acl_index=acl.acl_index).retval == -142
    (listed,) = papi.api.acl_interface_list_dump(sw_if_index=NO_INDEX)
    assert (listed.sw_if_index, listed.n_input, list(listed.acls)) == (0, 1, [acl.acl_index])
