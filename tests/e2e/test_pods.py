"""End to end: a "node" namespace runs a real contiv-agent (etcd beside it); pods are namespaces
this test creates, wired by executing contiv-cni exactly as a container runtime does.

``CONTIV_E2E_AGENT`` may name another command that runs the agent (``--config FILE`` is
appended), e.g. to try an agent build; by default it is ``python -m apps.vswitch.main``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.cni.runtime import CNIPluginError
from plugins.podmanager.cnicodes import CNICode
from tests.e2e.testbed import NodeTestbed, PodSandbox, in_ns, sh

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(300)]

TCP_PORT = 7070


def start_bed(workdir: Path, **kw: Any) -> NodeTestbed:
    command = os.environ.get("CONTIV_E2E_AGENT")
    bed = NodeTestbed(workdir, agent_command=command.split() if command else None, **kw)
    bed.start()
    return bed


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeTestbed]:
    testbed = start_bed(tmp_path_factory.mktemp("e2e-node"))
    try:
        yield testbed
    finally:
        testbed.close()


@pytest.fixture
def pods(bed: NodeTestbed) -> Iterator[list[PodSandbox]]:
    """Pods made by one test; DEL (best effort) and namespace removal afterwards."""
    made: list[PodSandbox] = []
    yield made
    for pod in made:
        try:
            bed.delete(pod)
        except CNIPluginError:
            pass
        bed.delete_pod_namespace(pod)


def new_pod(bed: NodeTestbed, pods: list[PodSandbox], name: str) -> PodSandbox:
    pod = bed.new_pod(name)
    pods.append(pod)
    return pod


def ping(netns: str, address: str) -> bool:
    return in_ns(netns, "ping", "-c", "1", "-W", "2", address, check=False).returncode == 0


def tcp_exchange(server_ns: str, client_ns: str, address: str) -> str:
    """One TCP connection from ``client_ns`` to a one-shot server in ``server_ns``."""
    server_code = (
        "import socket,sys\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0',{TCP_PORT})); s.listen(1); print('ready', flush=True)\n"
        "s.settimeout(15); c,_=s.accept(); c.sendall(b'hello from '+sys.argv[1].encode()+b':'"
        "+c.recv(100)); c.close()\n"
    )
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, sys.executable, "-c", server_code, server_ns],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client_code = (
            "import socket,sys\n"
            f"c=socket.create_connection((sys.argv[1],{TCP_PORT}),timeout=5); c.sendall(b'ping')\n"
            "print(c.recv(200).decode())\n"
        )
        out = in_ns(client_ns, sys.executable, "-c", client_code, address, timeout=20)
        return out.stdout.strip()
    finally:
        server.kill()
        server.wait()


def snapshot(bed: NodeTestbed) -> dict[str, Any]:
    """What an ADD may change on the node: links, routes, neighbours, records, allocations."""
    return {
        "links": sorted(
            line.split(":")[1].split("@")[0].strip()
            for line in sh("ip", "-n", bed.node_ns, "-o", "link").stdout.splitlines()
        ),
        "routes": sh("ip", "-n", bed.node_ns, "route").stdout,
        "neighbours": sh("ip", "-n", bed.node_ns, "neigh", "show", "nud", "permanent").stdout,
        "records": bed.records(),
        "allocations": bed.http_json("/contiv/v1/ipam/allocations")["allocations"],
    }


def records_in_etcd(bed: NodeTestbed) -> str:
    assert bed.etcd is not None
    return bed.etcd.etcdctl("get", "--keys-only", "--prefix", f"/vnf-agent/{bed.node_name}/podmanager/").stdout


# -------------------------------------------------------------------------------- connectivity


def test_pod_to_pod_and_pod_to_node(bed: NodeTestbed, pods: list[PodSandbox]) -> None:
    a, b = new_pod(bed, pods, "a"), new_pod(bed, pods, "b")
    result = bed.add(a)
    bed.add(b)
    assert result["cniVersion"] == "1.0.0"
    host, eth0 = result["interfaces"]
    assert eth0["name"] == "eth0" and eth0["sandbox"] == a.netns_path
    assert "sandbox" not in host and host["name"] in sh("ip", "-n", bed.node_ns, "link").stdout
    assert result["ips"][0]["interface"] == 1
    gateway = result["ips"][0]["gateway"]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": gateway}]
    assert a.ip != b.ip
    assert f"{a.ip}/32" in sh("ip", "-n", a.netns, "addr", "show", "eth0").stdout

    assert ping(a.netns, b.ip) and ping(b.netns, a.ip)
    assert tcp_exchange(b.netns, a.netns, b.ip) == f"hello from {b.netns}:ping"
    # Pod to node: the gateway is the node's address on the pod's link.
    assert ping(a.netns, gateway)
    assert tcp_exchange(bed.node_ns, a.netns, gateway) == f"hello from {bed.node_ns}:ping"
    # And node to pod.
    assert ping(bed.node_ns, a.ip)


def test_del_removes_every_trace_and_frees_the_ip(bed: NodeTestbed, pods: list[PodSandbox]) -> None:
    before = snapshot(bed)
    pod = new_pod(bed, pods, "gone")
    bed.add(pod)
    during = snapshot(bed)
    assert during != before
    assert {"namespace": "default", "name": "gone", "ip": pod.ip} in during["allocations"]
    assert during["records"]["default/gone"]["container_id"] == pod.container_id
    assert "podmanager/pod/default/gone" in records_in_etcd(bed)

    bed.delete(pod)
    assert snapshot(bed) == before
    assert sh("ip", "-n", pod.netns, "-o", "link").stdout.count("\n") == 1  # only lo
    assert "podmanager/pod/default/gone" not in records_in_etcd(bed)
    bed.delete(pod)  # DEL again: idempotent
    assert snapshot(bed) == before


def test_add_twice_for_the_same_container_is_safe(bed: NodeTestbed, pods: list[PodSandbox]) -> None:
    pod = new_pod(bed, pods, "twice")
    first = bed.add(pod)
    links = snapshot(bed)["links"]
    second = bed.add(pod)
    assert second == first
    assert snapshot(bed)["links"] == links
    assert ping(pod.netns, first["ips"][0]["gateway"])
    bed.check(pod)


def test_check_detects_a_removed_route(bed: NodeTestbed, pods: list[PodSandbox]) -> None:
    pod = new_pod(bed, pods, "checked")
    bed.add(pod)
    bed.check(pod)
    sh("ip", "-n", pod.netns, "route", "del", "default")
    with pytest.raises(CNIPluginError) as err:
        bed.check(pod)
    assert err.value.code == CNICode.CHECK_FAILED
    assert "route 0.0.0.0/0" in err.value.msg and "missing" in err.value.msg


BAD_INPUTS = [
    pytest.param(b"{oops", {}, CNICode.DECODE_FAILURE, id="bad-json"),
    pytest.param(None, {"CNI_NETNS": None}, CNICode.INVALID_ENVIRONMENT, id="missing-env"),
    pytest.param({"cniVersion": "0.1.0"}, {}, CNICode.INCOMPATIBLE_VERSION, id="unknown-version"),
    pytest.param(None, {"CNI_NETNS": "/var/run/netns/cnie-absent"}, CNICode.INVALID_ENVIRONMENT,
                 id="bad-netns-path"),
    pytest.param({"grpcServer": "/var/run/contiv-e2e/absent.sock"}, {}, CNICode.TRY_AGAIN_LATER,
                 id="agent-down"),
]


@pytest.mark.parametrize(("conf", "env", "code"), BAD_INPUTS)
def test_bad_inputs_get_cni_errors_and_change_nothing(
    bed: NodeTestbed, pods: list[PodSandbox], conf: Any, env: dict[str, str | None], code: int
) -> None:
    pod = new_pod(bed, pods, "bad")
    before = snapshot(bed)
    good = {**bed.network()["plugins"][0], "name": "contiv-k8s", "cniVersion": "1.0.0"}
    stdin = conf if isinstance(conf, bytes) else {**good, **(conf or {})}
    with pytest.raises(CNIPluginError) as err:
        bed.runtime.exec_plugin("contiv-cni", "ADD", stdin, pod.runtime_conf(), env_override=env)
    assert err.value.code == code, err.value
    assert snapshot(bed) == before
    assert sh("ip", "-n", pod.netns, "-o", "link").stdout.count("\n") == 1


# -------------------------------------------------------------------------------- restart


def test_kill_9_restart_keeps_addresses_and_connectivity(
    bed: NodeTestbed, pods: list[PodSandbox]
) -> None:
    a, b = new_pod(bed, pods, "r1"), new_pod(bed, pods, "r2")
    bed.add(a)
    bed.add(b)
    addresses = {a.ip, b.ip}

    bed.kill_agent(signal.SIGKILL)
    late = new_pod(bed, pods, "late")
    with pytest.raises(CNIPluginError) as err:  # agent down: try again later
        bed.add(late)
    assert err.value.code == CNICode.TRY_AGAIN_LATER
    assert ping(a.netns, b.ip)  # the kernel keeps forwarding meanwhile

    bed.start_agent()
    bed.wait_ready()
    for pod in (a, b):
        assert f"{pod.ip}/32" in sh("ip", "-n", pod.netns, "addr", "show", "eth0").stdout
        bed.check(pod)
    assert ping(a.netns, b.ip) and ping(b.netns, a.ip)
    recorded = set(bed.records())
    assert {"default/r1", "default/r2"} <= recorded and "default/late" not in recorded

    bed.add(late)
    assert late.ip not in addresses
    assert ping(late.netns, a.ip)
    bed.delete(a)  # a pod wired before the restart is removed completely
    assert not ping(late.netns, a.ip)


# -------------------------------------------------------------------------------- exhaustion


def test_small_node_subnet_fills_then_fails_with_exhaustion(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    small = start_bed(tmp_path_factory.mktemp("e2e-small"), pod_subnet_prefix_len=28,
                      node_name="e2e-small")
    try:
        plan = small.http_json("/contiv/v1/ipam")
        subnet, capacity = plan["podSubnetThisNode"], plan["podCapacity"]
        assert subnet.endswith("/28") and 0 < capacity < 16
        filled = []
        for i in range(capacity):
            pod = small.new_pod(f"f{i}")
            small.add(pod)
            filled.append(pod)
        assert len({pod.ip for pod in filled}) == capacity
        extra = small.new_pod("extra")
        before = snapshot(small)
        with pytest.raises(CNIPluginError) as err:
            small.add(extra)
        assert err.value.code == CNICode.ADD_FAILED
        assert subnet in err.value.msg and str(capacity) in err.value.msg
        assert snapshot(small) == before
        # Freeing one address makes room again.
        small.delete(filled[0])
        small.add(extra)
        assert extra.ip == filled[0].ip  # the only free address
    finally:
        small.close()
