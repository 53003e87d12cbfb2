"""contiv-stn as a process on a node namespace: steal, exact restore, crash, watchdog, bad input."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable

import grpc
import httpx
import pytest

from plugins.stn.client import SERVICE_NAME, STNClient, STNClientError
from plugins.stn.links import read_link
from plugins.stn.record import RecordStore
from plugins.stn.stn_pb2 import STNReply, STNRequest
from tests.plugins.stn.conftest import NIC, Daemon, Node, assert_same, free_port, ip, wait_for

pytestmark = pytest.mark.netns


async def test_steal_takes_everything_and_release_restores_it_exactly(
    node: Node, make_daemon: Callable[..., Daemon]
) -> None:
    before = node.link_state()
    daemon = make_daemon()
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600
    async with STNClient(daemon.socket) as client:
        reply = await client.steal(NIC)
        assert node.addresses() == [] and node.routes() == []
        assert sorted(reply.ip_addresses) == ["192.168.77.10/24", "192.168.78.10/24", "2001:db8:77::10/64"]
        routes = {(r.destination_subnet, r.next_hop_ip) for r in reply.routes}
        assert {("0.0.0.0/0", "192.168.77.1"), ("10.66.0.0/16", "192.168.77.2"), ("10.55.0.0/24", ""),
                ("10.44.0.0/16", "192.168.77.1"), ("192.168.77.0/24", ""),
                ("2001:db8:99::/48", "2001:db8:77::1")} <= routes
        assert reply.kernel_driver == "veth" and reply.pci_address == ""
        assert "no PCI device" in reply.detail
        record = json.loads(reply.record_json)
        assert record["state"] == "stolen"
        # the record is on disk and in REST
        on_disk = json.loads(daemon.state_file.read_text())["links"][NIC]
        assert on_disk == record == daemon.rest()["stolen"][NIC]
        assert (await client.info(NIC)).record_json == reply.record_json
        await client.release(NIC)
    assert_same(node.link_state(), before)
    assert json.loads(daemon.state_file.read_text())["links"] == {}
    assert 'stn_operations{operation="release"} 1.0' in httpx.get(daemon.url + "/metrics").text


async def test_record_survives_kill_and_restart(node: Node, make_daemon: Callable[..., Daemon]) -> None:
    before = node.link_state()
    daemon = make_daemon()
    async with STNClient(daemon.socket) as client:
        await client.steal(NIC)
    stolen = node.link_state()
    daemon.kill()  # SIGKILL: no clean-up at all
    assert node.addresses() == []
    daemon.start()
    assert daemon.rest()["stolen"][NIC]["state"] == "stolen"
    assert node.link_state() == stolen  # a restart changes nothing by itself
    async with STNClient(daemon.socket) as client:
        info = await client.info(NIC)
        assert "192.168.77.10/24" in info.ip_addresses
        await client.release(NIC)
    assert_same(node.link_state(), before)


async def test_watchdog_restores_when_host_interface_goes_down_or_disappears(
    node: Node, make_daemon: Callable[..., Daemon]
) -> None:
    ip(node.ns, "link", "add", "vpp1", "type", "veth", "peer", "name", "vpp2")
    ip(node.ns, "link", "set", "vpp1", "up")
    ip(node.ns, "link", "set", "vpp2", "up")
    before = node.link_state()
    daemon = make_daemon(grace_s=0.2, down_timeout_s=0.5, check_interval_s=0.1)
    async with STNClient(daemon.socket) as client:
        # vpp1 stays down
        await client.steal(NIC)
        wait_for("the watchdog to watch vpp1", lambda: daemon.rest()["watchdog"]["watching"])
        assert daemon.rest()["stolen"]  # vpp1 is up: nothing happens
        ip(node.ns, "link", "set", "vpp1", "down")
        wait_for("the watchdog to restore the NIC", lambda: not daemon.rest()["stolen"])
        assert_same(node.link_state(), before)
        assert "vpp1 is down" in daemon.rest()["watchdog"]["last_reason"]
        # vpp1 disappears
        ip(node.ns, "link", "set", "vpp1", "up")
        await client.steal(NIC)
        wait_for("the watchdog to watch vpp1", lambda: daemon.rest()["watchdog"]["watching"])
        ip(node.ns, "link", "del", "vpp1")
        wait_for("the watchdog to restore the NIC", lambda: not daemon.rest()["stolen"])
    assert_same(node.link_state(), before)
    state = daemon.rest()["watchdog"]
    assert state["restores"] == 2 and "vpp1 is missing" in state["last_reason"]
    assert "watchdog: the dataplane's host interface vpp1 is missing: restoring nic0" in daemon.log()


async def test_watchdog_restores_when_agent_stays_unready(node: Node, make_daemon: Callable[..., Daemon]) -> None:
    ip(node.ns, "link", "add", "vpp1", "type", "veth", "peer", "name", "vpp2")
    ip(node.ns, "link", "set", "vpp1", "up")
    ip(node.ns, "link", "set", "vpp2", "up")
    before = node.link_state()
    # nothing listens on that port: the agent is unreachable, hence not ready
    daemon = make_daemon(grace_s=0.2, check_interval_s=0.1, agent_timeout_s=0.5,
                         agent_readiness_url=f"http://127.0.0.1:{free_port()}/readiness")
    async with STNClient(daemon.socket) as client:
        await client.steal(NIC)
    wait_for("the watchdog to restore the NIC", lambda: not daemon.rest()["stolen"])
    assert_same(node.link_state(), before)
    assert "the agent is not ready" in daemon.rest()["watchdog"]["last_reason"]


async def test_double_steal_and_missing_link_are_clear_errors(
    node: Node, make_daemon: Callable[..., Daemon]
) -> None:
    daemon = make_daemon()
    async with STNClient(daemon.socket) as client:
        with pytest.raises(STNClientError, match="no link 'nosuch0' in namespace"):
            await client.steal("nosuch0")
        assert daemon.rest()["stolen"] == {}
        first = await client.steal(NIC)
        stolen = node.link_state()
        with pytest.raises(STNClientError, match="nic0 is already stolen"):
            await client.steal(NIC)
        assert node.link_state() == stolen
        assert (await client.info(NIC)).record_json == first.record_json  # the record is untouched
        with pytest.raises(STNClientError, match="nosuch0 is not stolen"):
            await client.release("nosuch0")
        await client.release(NIC)
        with pytest.raises(STNClientError, match="nic0 is not stolen"):
            await client.release(NIC)


BAD_INPUT = [
    ("", grpc.StatusCode.INVALID_ARGUMENT, "interface_name is empty"),
    ("x" * 10_000, grpc.StatusCode.INVALID_ARGUMENT, "is 10000 bytes long; a Linux interface name has at most 15"),
    ("a/b", grpc.StatusCode.INVALID_ARGUMENT, "not a valid Linux interface name"),
    ("..", grpc.StatusCode.INVALID_ARGUMENT, "not a valid Linux interface name"),
    ("x" * 1_000_000, grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
]


async def test_bad_grpc_input(node: Node, make_daemon: Callable[..., Daemon]) -> None:
    """Empty, huge and malformed names: a clear error on every RPC, nothing changed."""
    daemon = make_daemon()
    before = node.link_state()
    async with grpc.aio.insecure_channel(f"unix:{daemon.socket}") as channel:
        for method in ("StealInterface", "ReleaseInterface", "StolenInterfaceInfo"):
            call = channel.unary_unary(f"/{SERVICE_NAME}/{method}", request_serializer=STNRequest.SerializeToString,
                                       response_deserializer=STNReply.FromString)
            for name, code, message in BAD_INPUT:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(STNRequest(interface_name=name), timeout=30)
                assert (err.value.code(), method) == (code, method)
                assert message in (err.value.details() or ""), (method, err.value.details())
    assert node.link_state() == before and daemon.rest()["stolen"] == {}


def test_operator_subcommands(node: Node, make_daemon: Callable[..., Daemon]) -> None:
    before = node.link_state()
    daemon = make_daemon()
    steal = daemon.cli("steal", NIC)
    assert steal.returncode == 0, steal.stderr
    assert "192.168.77.10/24" in json.loads(steal.stdout)["ip_addresses"]
    again = daemon.cli("steal", NIC)
    assert again.returncode == 1 and "nic0 is already stolen" in again.stderr
    info = daemon.cli("info", NIC)
    assert info.returncode == 0 and json.loads(info.stdout)["interface"] == NIC
    release = daemon.cli("release", NIC)
    assert release.returncode == 0, release.stderr
    assert_same(node.link_state(), before)
    missing = daemon.cli("info", NIC)
    assert missing.returncode == 1 and "nic0 is not stolen" in missing.stderr


async def test_crash_in_the_middle_of_a_steal_is_completed_by_release(
    node: Node, make_daemon: Callable[..., Daemon]
) -> None:
    """The record is written first: a daemon dying after it took off only part is still safe."""
    before = node.link_state()
    daemon = make_daemon()
    daemon.kill()
    link = await read_link(NIC, node.ns)  # what the daemon records first (state "stealing")
    store = RecordStore(daemon.state_file)
    store.put(link)
    ip(node.ns, "route", "del", "default")  # ... then it took off a part and died
    ip(node.ns, "addr", "del", "192.168.78.10/24", "dev", NIC)
    daemon.start()
    assert daemon.rest()["stolen"][NIC]["state"] == "stealing"
    async with STNClient(daemon.socket) as client:
        await client.release(NIC)
    assert_same(node.link_state(), before)


def test_corrupt_record_stops_the_start_and_is_kept(node: Node, make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon()
    daemon.kill()
    daemon.state_file.parent.mkdir(parents=True, exist_ok=True)
    daemon.state_file.write_text('{"version": 1, "links": {"nic0": {"interface": 5}}}')
    with pytest.raises(AssertionError, match="exited with 1"):
        daemon.start()
    assert f"the STN record {daemon.state_file} is corrupt" in daemon.log()
    assert daemon.state_file.read_text() == '{"version": 1, "links": {"nic0": {"interface": 5}}}'


async def test_watchdog_gives_up_after_bounded_retries_and_reports_unready(
    node: Node, make_daemon: Callable[..., Daemon]
) -> None:
    daemon = make_daemon(grace_s=0.2, down_timeout_s=0.3, check_interval_s=0.1, restore_retries=2,
                         restore_retry_interval_s=0.05)
    async with STNClient(daemon.socket) as client:
        await client.steal(NIC)
    ip(node.ns, "link", "del", NIC)  # the NIC itself is gone: nothing can be restored
    wait_for("the watchdog to give up", lambda: "gave up restoring" in daemon.log())
    readiness = httpx.get(daemon.url + "/readiness", timeout=5)
    assert readiness.status_code == 503
    detail = readiness.json()["components"]["stn"]["detail"]
    assert "watchdog gave up restoring nic0 after 2 attempts" in detail and str(daemon.state_file) in detail
    assert daemon.rest()["stolen"][NIC]["state"] == "stolen"  # the record is kept
    assert "restore of nic0, attempt 2/2: cannot restore nic0: no link 'nic0'" in daemon.log()
