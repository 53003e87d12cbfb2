"""The agent side of STN: ipnet with ``stn: true`` on the VPP stand-in, with contiv-stn as a process."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Address
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from apps.vswitch.main import SPEC as AGENT
from core.agent import Agent
from core.app import load_config
from core.config import ConfigError
from core.health import HealthPlugin
from core.testing import running_app
from plugins.controller.events import DBResync
from plugins.controller.txn import EventTransaction
from plugins.ipnet.config import IPNetConfig, VppRenderSettings
from plugins.ipnet.plugin import IPNetPlugin
from plugins.kvscheduler.api import ResyncMode
from plugins.vpp import model as vpp
from plugins.vpp.apidefs import bundled_api_dir
from plugins.vpp.connection import VPPConnection
from plugins.vpp.descriptors.stn import (
    ProxyArpInterface,
    ProxyArpRange,
    StnRule,
    proxy_arp_interface_key,
    proxy_arp_range_key,
    stn_rule_key,
)
from tests.plugins.ipnet.renderer.test_vpp import scheduler_for
from tests.plugins.ipnet.support import NodeTable, PodRecords, real_ipam
from tests.plugins.ipnet.support import node as node_record
from tests.plugins.stn.conftest import GATEWAY, NIC, Daemon, Node, ip_json
from tests.vppstub import VPPStub
from tests.vppstub.interfaces import Options

pytestmark = pytest.mark.netns


@pytest.fixture
async def stand_in(node: Node) -> AsyncIterator[tuple[VPPStub, VPPConnection]]:
    directory = Path(tempfile.mkdtemp(prefix="stnv-"))
    # VPP runs on the node: the af_packet on the stolen NIC finds it in the node namespace.
    stub = VPPStub(directory / "api.sock", options=Options(create_host_taps=True, host_namespace=node.ns)).start()
    conn = VPPConnection(stub.socket_path, bundled_api_dir(), reconnect_interval_s=0.05)
    await conn.connect()
    try:
        yield stub, conn
    finally:
        await conn.close()
        stub.stop()
        stub.remove_host_taps()
        shutil.rmtree(directory, ignore_errors=True)


def stn_config(node: Node, daemon: Daemon) -> IPNetConfig:
    return IPNetConfig(dataplane="vpp", node_namespace=node.ns, stn=True, stn_interface=NIC,
                       stn_socket=daemon.socket, stn_timeout_s=30,
                       vpp=VppRenderSettings(pod_interface="tap"))  # the stand-in makes TAPs


async def test_agent_with_stn_on_vpp(
    tmp_path: Path, node: Node, make_daemon: Callable[..., Daemon], stand_in: tuple[VPPStub, VPPConnection]
) -> None:
    stub, conn = stand_in
    daemon = make_daemon()
    nodes = NodeTable("node1", {"node1": node_record(1, "node1")})
    async with real_ipam(tmp_path, nodes) as ipam:
        ipnet = IPNetPlugin(stn_config(node, daemon), ipam=ipam, nodesync=nodes, podmanager=PodRecords())
        await ipnet.init()  # asks contiv-stn: nothing stolen yet, so StealInterface
        assert daemon.rest()["stolen"][NIC]["state"] == "stolen"
        assert node.addresses() == []
        scheduler = scheduler_for(conn)
        try:
            txn = EventTransaction()
            ipnet.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
            result = await scheduler.commit(txn.desired_state(), resync=ResyncMode.FULL)
            assert result.ok, result.errors
        finally:
            await scheduler.close()

        # VPP: the NIC (af_packet on the stolen link) has the node's addresses
        by_tag = {i.tag: i for i in stub.state.interfaces.values()}
        nic = by_tag["cv:main-nic"]
        assert (nic.dev_type, nic.link["host_if_name"]) == ("af_packet", NIC)
        assert sorted(map(str, nic.addresses)) == ["192.168.77.10/24", "192.168.78.10/24"]
        assert "cv:loopbackNIC" not in by_tag
        tap = by_tag["cv:tap-vpp2"]
        assert tap.addresses == [] and tap.unnumbered_to == nic.sw_if_index
        # the STN rule punts the node IP to the host interconnect; proxy ARP answers for the subnets
        assert stub.state.stn_rules == {"192.168.77.10": tap.sw_if_index}
        assert stub.state.proxy_arp_ranges == {(0, "192.168.77.1", "192.168.77.254"),
                                               (0, "192.168.78.1", "192.168.78.254")}
        assert stub.state.proxy_arp_interfaces == {tap.sw_if_index}
        vpp_routes = {(str(k[1]), r.paths[0].sw_if_index, str(r.paths[0].nh.address.ip4))
                      for k, r in stub.state.routes.items() if k[0] == 0}
        assert ("0.0.0.0/0", nic.sw_if_index, GATEWAY) in vpp_routes
        assert ("10.66.0.0/16", nic.sw_if_index, "192.168.77.2") in vpp_routes
        # the host keeps its addresses, now on the interconnect, and its routes go via it
        (vpp1,) = ip_json(node.ns, "addr", "show", "dev", "vpp1")
        assert sorted(f"{a['local']}/{a['prefixlen']}" for a in vpp1["addr_info"] if a["family"] == "inet") == [
            "192.168.77.10/24", "192.168.78.10/24"]
        routes = {(r["dst"], r.get("gateway"), r.get("table", "main"))
                  for r in ip_json(node.ns, "route", "show", "table", "all", "dev", "vpp1")}
        assert {("default", GATEWAY, "main"), ("10.66.0.0/16", "192.168.77.2", "main"), ("10.55.0.0/24", None, "main"),
                ("10.44.0.0/16", GATEWAY, "100"), ("10.1.0.0/16", GATEWAY, "main")} <= routes
        state = ipnet.describe_internal_state()
        assert state["stolen_nic"]["interface"] == NIC  # type: ignore[index]
        assert str(ipnet._node().node_ip) == "192.168.77.10/24"

        # agent restart: contiv-stn already has the NIC (StolenInterfaceInfo); VPP is not touched
        calls = stub.mutating_calls()
        again = IPNetPlugin(stn_config(node, daemon), ipam=ipam, nodesync=nodes, podmanager=PodRecords())
        await again.init()
        assert again.stolen == ipnet.stolen
        scheduler = scheduler_for(conn)
        try:
            txn = EventTransaction()
            again.resync(DBResync({}, {}), None, 1, txn)  # type: ignore[arg-type]
            result = await scheduler.commit(txn.desired_state(), resync=ResyncMode.FULL)
            assert result.ok, result.errors
            assert [(o.operation.value, o.key) for o in result.operations] == []
        finally:
            await scheduler.close()
        assert stub.mutating_calls() == calls
        metrics = httpx.get(daemon.url + "/metrics").text
        assert 'stn_operations{operation="steal"} 1.0' in metrics


def test_stn_on_the_linux_dataplane_is_refused() -> None:
    with pytest.raises(ValidationError, match="stn: true needs dataplane: vpp"):
        IPNetConfig(dataplane="linux", stn=True, stn_interface=NIC)
    with pytest.raises(ValidationError, match="stn: true needs stn_interface"):
        IPNetConfig(dataplane="vpp", stn=True)
    config = {"plugins": ["kvscheduler", "linux", "ipnet"], "ipnet": {"dataplane": "linux", "stn": True,
                                                                      "stn_interface": NIC}}
    with pytest.raises(ConfigError) as err:
        load_config(AGENT, config, {})
    assert "the Linux kernel already owns the NIC" in str(err.value)


async def test_agent_start_fails_clearly_without_contiv_stn(tmp_path: Path) -> None:
    nodes = NodeTable("node1", {"node1": node_record(1, "node1")})
    async with real_ipam(tmp_path, nodes) as ipam:
        config = IPNetConfig(dataplane="vpp", stn=True, stn_interface=NIC, stn_socket=str(tmp_path / "none.sock"),
                             stn_timeout_s=1)
        ipnet = IPNetPlugin(config, ipam=ipam, nodesync=nodes, podmanager=PodRecords())
        with pytest.raises(Exception, match="contiv-stn is not reachable on"):
            await ipnet.init()


async def test_stn_descriptors_create_read_back_and_delete(stand_in: tuple[VPPStub, VPPConnection]) -> None:
    stub, conn = stand_in
    loop = vpp.Interface(name="punt", type=vpp.InterfaceType.LOOPBACK)
    rule = StnRule(ip_address=IPv4Address("192.168.5.10"), interface="punt")
    arp = ProxyArpRange(low=IPv4Address("192.168.5.1"), high=IPv4Address("192.168.5.254"))
    values = {vpp.interface_key("punt"): loop, stn_rule_key(rule.ip_address): rule,
              proxy_arp_range_key(arp): arp, proxy_arp_interface_key("punt"): ProxyArpInterface(interface="punt")}
    scheduler = scheduler_for(conn)
    try:
        result = await scheduler.commit(values)
        assert result.ok, result.errors
        (index,) = [i.sw_if_index for i in stub.state.interfaces.values() if i.tag == "cv:punt"]
        assert stub.state.stn_rules == {"192.168.5.10": index}
        assert stub.state.proxy_arp_ranges == {(0, "192.168.5.1", "192.168.5.254")}
        assert stub.state.proxy_arp_interfaces == {index}
        # read back equals what was written: a full resync changes nothing
        result = await scheduler.commit(values, resync=ResyncMode.FULL)
        assert result.ok and [o.key for o in result.operations] == []
        with pytest.raises(ValidationError, match="ends before it starts"):
            ProxyArpRange(low=IPv4Address("10.0.0.9"), high=IPv4Address("10.0.0.1"))
        result = await scheduler.commit({}, resync=ResyncMode.FULL)
        assert result.ok, result.errors
        st = stub.state
        assert (st.stn_rules, st.proxy_arp_ranges, st.proxy_arp_interfaces) == ({}, set(), set())
    finally:
        await scheduler.close()


def agent_config(tmp: Path, node: Node, daemon: Daemon, stub: VPPStub) -> dict[str, object]:
    return {
        # vpp after controller, as default.yaml's comment suggests: the first resync waits until
        # every plugin (so VPP's connection) has started.
        "plugins": ["service-label", "http", "health", "kvdb", "kvscheduler", "controller", "linux", "nodesync",
                    "ipam", "podmanager", "ipnet", "vpp"],
        "service-label": {"label": "node1"},
        "http": {"address": "127.0.0.1", "port": 0},
        "kvdb": {"backend": "memory"},
        "controller": {"handler_order": ["nodesync", "ipam", "podmanager", "ipnet"],
                       "dbwatcher": {"mirror_file": str(tmp / "mirror.sqlite")}},
        "ipam": {"state_file": str(tmp / "ipam.json")},
        "podmanager": {"socket_path": str(tmp / "cni.sock"), "records_file": str(tmp / "pods.json")},
        "vpp": {"api_socket": stub.socket_path, "api_dir": bundled_api_dir()},
        "ipnet": {"dataplane": "vpp", "node_namespace": node.ns, "stn": True, "stn_interface": NIC,
                  "stn_socket": daemon.socket},
    }


async def wait_ready(agent: Agent) -> None:
    health = next(p for p in agent.plugins if isinstance(p, HealthPlugin))
    for _ in range(1200):
        if health.ready():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"agent not ready: {health.snapshot()}")


async def test_contiv_agent_app_with_stn_restarts_without_vpp_calls(
    node: Node, make_daemon: Callable[..., Daemon], stand_in: tuple[VPPStub, VPPConnection]
) -> None:
    """The whole contiv-agent (in-process): STN at start, and a restart that makes no VPP call."""
    stub, _ = stand_in
    daemon = make_daemon()
    tmp = Path(tempfile.mkdtemp(prefix="stna-"))
    try:
        config = agent_config(tmp, node, daemon, stub)
        async with running_app(AGENT, config) as agent:
            await wait_ready(agent)
            assert list(stub.state.stn_rules) == ["192.168.77.10"]
            assert node.addresses() == []
        calls = stub.mutating_calls()
        async with running_app(AGENT, config) as agent:
            await wait_ready(agent)
            assert stub.mutating_calls() == calls
        # the restarted agent asked StolenInterfaceInfo: still only one steal
        assert 'stn_operations{operation="steal"} 1.0' in httpx.get(daemon.url + "/metrics").text
        assert daemon.rest()["stolen"][NIC]["state"] == "stolen"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
