"""NAT44-ED descriptors against the stand-in and, where one is installed, a real VPP (same tests)."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.vpp import model as m
from plugins.vpp import nat as n
from plugins.vpp.connection import VPPConnection
from tests.plugins.vpp.conftest import make_scheduler
from tests.vppreal.cluster import mutating
from tests.vppreal.fixtures import NodeVPPs, node_vpps, vpp_install  # noqa: F401 - fixtures
from tests.vppstub import VPPStub, default_api_dir


@pytest.fixture(params=["stand-in", "real"])
def vpp_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(api socket, api dir) of the stand-in, or of a real VPP (skipped where none is installed)."""
    if request.param == "stand-in":
        stub = VPPStub(tmp_path / "api.sock").start()
        try:
            yield stub.socket_path, default_api_dir()
        finally:
            stub.stop()
        return
    nodes: NodeVPPs = request.getfixturevalue("node_vpps")
    vpp = nodes.node("nat")
    try:
        yield vpp.api_socket, vpp.api_dir
    finally:
        vpp.restart()  # the next test gets an empty VPP


@pytest.fixture
async def conn(vpp_target: tuple[str, str]) -> AsyncIterator[VPPConnection]:
    connection = VPPConnection(*vpp_target, reply_timeout_s=10)
    await connection.connect()
    try:
        yield connection
    finally:
        await connection.close()


def base() -> dict[str, Any]:
    """Contiv's NAT for one node: interfaces, pools, features, identities."""
    values: dict[str, Any] = {m.vrf_key(1): m.VrfTable(id=1, label="pod")}
    for name in ("uplink", "podif", "hostif"):
        values[m.interface_key(name)] = m.Interface(name=name, type=m.InterfaceType.LOOPBACK)
    values[n.GLOBAL_KEY] = n.Nat44Global(sessions=20000)
    for pool in (n.Nat44Address(first=IPv4Address("192.168.16.1")),
                 n.Nat44Address(first=IPv4Address("10.1.1.254"), twice_nat=True)):
        values[n.nat_address_key(pool)] = pool
    for feature in (n.Nat44Interface(interface="uplink", output=True),
                    n.Nat44Interface(interface="podif", inside=True, outside=True),
                    n.Nat44Interface(interface="hostif", outside=True)):
        values[n.nat_interface_key(feature.interface)] = feature
    for ident in (n.Nat44Identity(ip=IPv4Address("192.168.16.1"), protocol="udp", port=4789, label="identities"),
                  n.Nat44Identity(ip=IPv4Address("192.168.16.1"), label="identities"),
                  n.Nat44Identity(ip=IPv4Address("192.168.16.1"), vrf=1, label="identities")):
        values[n.nat_identity_key(ident)] = ident
    return values


def local(ip: str, port: int = 8080, probability: int = 1, vrf: int = 1) -> n.NatLocal:
    return n.NatLocal(ip=IPv4Address(ip), port=port, probability=probability, vrf=vrf)


def mapping(ip: str, port: int, *locals_: n.NatLocal, proto: str = "tcp", **kw: Any) -> dict[str, n.Nat44Mapping]:
    value = n.Nat44Mapping(external_ip=IPv4Address(ip), protocol=proto, external_port=port, locals=locals_, **kw)
    return {n.nat_mapping_key(value.external_ip, proto, port): value}


def services() -> dict[str, Any]:
    out: dict[str, Any] = {}
    out |= mapping("10.96.0.10", 53, local("10.1.1.5", 53), proto="udp", twice_nat=n.TwiceNat.SELF, label="kube/dns")
    out |= mapping("10.96.0.20", 80, local("10.1.1.2", probability=2), local("10.1.2.2"), local("10.1.3.2"),
                   twice_nat=n.TwiceNat.SELF, affinity=10800, label="default/web")
    out |= mapping("203.0.113.7", 80, local("10.1.1.2"), local("10.1.2.2"), twice_nat=n.TwiceNat.ENABLED,
                   label="default/web")
    return out


async def commit(scheduler: KVScheduler, values: dict[str, Any], **kw: Any) -> None:
    result = await scheduler.commit(values, **kw)
    assert result.ok, result.errors


async def test_nat_config_is_applied_read_back_and_a_restart_changes_nothing(conn: VPPConnection) -> None:
    scheduler = make_scheduler(conn)
    try:
        await commit(scheduler, {**base(), **services()})  # verify=True: every value read back as sent
    finally:
        await scheduler.close()
    before = collections.Counter(conn.stats.calls)
    restarted = make_scheduler(conn)  # an agent restart: a fresh scheduler, a full resync
    try:
        await commit(restarted, {**base(), **services()}, resync=ResyncMode.FULL)
        assert mutating(dict(collections.Counter(conn.stats.calls) - before)) == {}
    finally:
        await restarted.close()


async def test_backend_changes_touch_only_the_backends(conn: VPPConnection) -> None:
    scheduler = make_scheduler(conn)
    try:
        await commit(scheduler, {**base(), **services()})
        before = collections.Counter(conn.stats.calls)
        changed = mapping("10.96.0.20", 80, local("10.1.1.2", probability=2), local("10.1.3.2"), local("10.1.4.2"),
                          twice_nat=n.TwiceNat.SELF, affinity=10800, label="default/web")
        await commit(scheduler, changed)
        calls = mutating(dict(collections.Counter(conn.stats.calls) - before))
        assert calls == {"nat44_lb_static_mapping_add_del_local": 2}  # 10.1.4.2 in, 10.1.2.2 out
        # down to one backend: a plain static mapping replaces the load-balanced one
        single = mapping("10.96.0.20", 80, local("10.1.3.2"), twice_nat=n.TwiceNat.SELF, label="default/web")
        await commit(scheduler, single)
        await commit(scheduler, dict.fromkeys({**base(), **services()}))  # everything removed again
        config = await conn.call("nat44_show_running_config")
        assert int(config.sessions) == 0  # the plugin is disabled again
    finally:
        await scheduler.close()


async def test_foreign_mappings_are_left_alone(conn: VPPConnection) -> None:
    # enabled as we would (different sizes could only be applied by re-enabling: that wipes NAT)
    await conn.call("nat44_ed_plugin_enable_disable", enable=True, sessions=20000, inside_vrf=0, outside_vrf=0)
    await conn.call(
        "nat44_add_del_static_mapping_v2", is_add=True, match_pool=False, flags=n.OUT2IN_ONLY_FLAG,
        pool_ip_address="0.0.0.0", local_ip_address="10.9.9.9", external_ip_address="10.96.9.9", protocol=6,
        local_port=1, external_port=1, external_sw_if_index=0xFFFFFFFF, vrf_id=0, tag="someone-else",
    )
    scheduler = make_scheduler(conn)
    try:
        await commit(scheduler, {**base(), **services()}, resync=ResyncMode.FULL)
        tags = sorted(str(d.tag) for d in await conn.dump("nat44_static_mapping_dump"))
        assert tags == ["cv:kube/dns", "someone-else"]
    finally:
        await scheduler.close()


def test_bad_nat_values_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="affinity needs 2"):
        n.Nat44Mapping(external_ip=IPv4Address("10.96.0.1"), external_port=80, locals=(local("10.1.1.2"),), affinity=5)
    with pytest.raises(ValueError, match="output feature excludes"):
        n.Nat44Interface(interface="x", output=True, inside=True)
    with pytest.raises(ValueError, match="NAT protocol 'sctp'"):
        n.Nat44Identity(ip=IPv4Address("10.0.0.1"), protocol="sctp", port=1)
    with pytest.raises(ValueError, match="ends before it starts"):
        n.Nat44Address(first=IPv4Address("10.0.0.2"), last=IPv4Address("10.0.0.1"))
