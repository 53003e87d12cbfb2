"""The full chain of reference plugins after ``contiv-cni``, against a real agent.

The conflist ``[contiv-cni, portmap, tuning, bandwidth, firewall, sbr]``: each chained plugin
inspects the result ``contiv-cni`` gave (``bandwidth`` finds the host end of the pod's veth,
``firewall`` and ``sbr`` follow ``ips[].interface`` to the pod interface). Every plugin runs in
the testbed's node namespace (their iptables rules and qdiscs stay there).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from apps.cni.runtime import CNIPluginError
from tests.e2e.testbed import NodeTestbed, in_ns, sh

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(300)]

MAC = "c2:00:00:aa:bb:cd"
PLUGINS = ("contiv-cni", "portmap", "tuning", "bandwidth", "firewall", "sbr")


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeTestbed]:
    testbed = NodeTestbed(tmp_path_factory.mktemp("chain"), prefix="wirc")
    testbed.start()
    try:
        yield testbed
    finally:
        testbed.close()


def conflist(bed: NodeTestbed, version: str, plugins: tuple[str, ...]) -> dict[str, Any]:
    conf: dict[str, dict[str, Any]] = {
        "contiv-cni": {"type": "contiv-cni", "grpcServer": str(bed.socket_path)},
        "portmap": {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        "tuning": {"type": "tuning", "mac": MAC,
                   "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
        # Ingress only (a tbf on the host veth); egress would need an ifb device.
        "bandwidth": {"type": "bandwidth", "ingressRate": 8_000_000, "ingressBurst": 65536},
        "firewall": {"type": "firewall", "backend": "iptables"},
        "sbr": {"type": "sbr"},
    }
    return {"cniVersion": version, "name": "contiv-k8s", "plugins": [conf[p] for p in plugins]}


CASES = [
    ("0.4.0", PLUGINS, False),
    ("1.0.0", PLUGINS, False),
    # CHECK without sbr: it moves the pod's routes to a table of its own, which fails the main
    # plugin's CHECK (Debian's bridge too). portmap 1.1.1 fails CHECK for IPv4-only pods
    # (containernetworking/plugins#819), so CHECK runs the list without it.
    ("0.4.0", PLUGINS[:-1], True),
    ("1.0.0", PLUGINS[:-1], True),
    # firewall speaks 0.4.0 and later.
    ("0.3.1", ("contiv-cni", "portmap", "tuning", "bandwidth", "sbr"), False),
]


@pytest.mark.parametrize(("version", "plugins", "check"), CASES)
def test_reference_plugins_chain_after_contiv(
    bed: NodeTestbed, version: str, plugins: tuple[str, ...], check: bool
) -> None:
    name = f"c{version.replace('.', '')}{len(plugins)}"
    pod = bed.new_pod(name)
    rt = pod.runtime_conf()
    rt.capability_args = {
        "portMappings": [{"hostPort": 18090, "containerPort": 80, "protocol": "tcp"}]
    }
    nets = conflist(bed, version, plugins)
    try:
        result = pod.result = bed.runtime.add_network_list(nets, rt)
        host, eth0 = result["interfaces"][:2]
        assert eth0["name"] == "eth0" and eth0["sandbox"] == pod.netns_path
        assert eth0["mac"] == MAC  # tuning found the pod interface
        assert "sandbox" not in host
        ip = result["ips"][0]
        assert ip["interface"] == 1
        address = ip["address"].split("/")[0]
        # bandwidth found the host end of the veth and shaped it.
        assert "tbf" in in_ns(bed.node_ns, "tc", "qdisc", "show", "dev", host["name"]).stdout
        assert f"{address}:80" in in_ns(bed.node_ns, "iptables", "-t", "nat", "-S").stdout
        if "firewall" in plugins:
            assert address in in_ns(bed.node_ns, "iptables", "-S", "CNI-FORWARD").stdout
        if "sbr" in plugins:
            assert "lookup 100" in sh("ip", "-n", pod.netns, "rule").stdout
        if check:
            checked = {**nets, "plugins": [p for p in nets["plugins"] if p["type"] != "portmap"]}
            bed.runtime.check_network_list(checked, rt, result)
        bed.runtime.del_network_list(nets, rt, result)
        assert f"{address}:80" not in in_ns(bed.node_ns, "iptables", "-t", "nat", "-S").stdout
        assert host["name"] not in sh("ip", "-n", bed.node_ns, "link").stdout
        assert f"default/{name}" not in bed.records()
        if "firewall" in plugins:
            rules = in_ns(bed.node_ns, "iptables", "-S", check=False).stdout
            assert address not in rules
    except CNIPluginError as exc:
        raise AssertionError(f"{exc.plugin}: {exc.code} {exc.msg}\n{bed.agent_log()}") from exc
    finally:
        try:
            bed.runtime.del_network_list(nets, rt, pod.result)
        except CNIPluginError:
            pass
        bed.delete_pod_namespace(pod)



def test_a_5_mb_network_configuration_is_accepted(bed: NodeTestbed) -> None:
    """Any size the CNI spec allows: the binary sends it within HTTP/2 flow control and the
    agent takes messages past gRPC's default 4 MiB."""
    pod = bed.new_pod("big")
    nets = conflist(bed, "1.0.0", ("contiv-cni",))
    nets["plugins"][0]["padding"] = "x" * 5_000_000  # unknown keys are ignored
    rt = pod.runtime_conf()
    try:
        result = pod.result = bed.runtime.add_network_list(nets, rt)
        assert result["interfaces"][1]["sandbox"] == pod.netns_path
        bed.runtime.del_network_list(nets, rt, result)
        assert "default/big" not in bed.records()
    finally:
        bed.delete_pod_namespace(pod)


POD_SERVER = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 80))
srv.listen(1)
print("ready", flush=True)
conn, peer = srv.accept()
conn.sendall(b"hello through the host port")
conn.close()
"""

POD_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20) as s:
    print(s.recv(100).decode())
"""


def test_host_port_works_with_the_installed_conflist_and_no_kube_proxy(bed: NodeTestbed) -> None:
    """The conflist contiv-cni-install writes chains portmap without kube-proxy's
    KUBE-MARK-MASQ (which a contiv node never has): portmap makes its own mark/masq chains and
    a connection to the node's address at the hostPort reaches the pod."""
    from apps.cni.install import conflist as installed_conflist

    nat = in_ns(bed.node_ns, "iptables", "-t", "nat", "-S").stdout
    assert "KUBE-MARK-MASQ" not in nat
    nets = installed_conflist(str(bed.socket_path), "")
    nets["name"] = "contiv-hostport"
    pod = bed.new_pod("hostport")
    rt = pod.runtime_conf()
    rt.capability_args = {"portMappings": [{"hostPort": 18095, "containerPort": 80, "protocol": "tcp"}]}
    node_address = "192.0.2.95"  # a node-local address (TEST-NET-1), on the node's loopback
    in_ns(bed.node_ns, "ip", "addr", "add", f"{node_address}/32", "dev", "lo")
    server = subprocess.Popen(["ip", "netns", "exec", pod.netns, sys.executable, "-c", POD_SERVER],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Negative control: the chain name the conflist used to carry fails every hostPort pod.
        old = {**nets, "plugins": [nets["plugins"][0],
                                   {**nets["plugins"][1], "externalSetMarkChain": "KUBE-MARK-MASQ"}]}
        with pytest.raises(CNIPluginError, match="KUBE-MARK-MASQ") as failed:
            bed.runtime.add_network_list(old, rt)
        assert failed.value.plugin == "portmap"
        bed.runtime.del_network_list(old, rt, None)  # as a runtime does after a failed ADD
        result = pod.result = bed.runtime.add_network_list(nets, rt)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        nat = in_ns(bed.node_ns, "iptables", "-t", "nat", "-S").stdout
        assert "CNI-HOSTPORT-MASQ" in nat and "--dport 18095" in nat and "KUBE-MARK-MASQ" not in nat
        reply = in_ns(bed.node_ns, sys.executable, "-c", POD_CLIENT, node_address, "18095")
        assert reply.stdout.strip() == "hello through the host port"
        bed.runtime.del_network_list(nets, rt, result)
        assert "--dport 18095" not in in_ns(bed.node_ns, "iptables", "-t", "nat", "-S").stdout
    except CNIPluginError as exc:
        raise AssertionError(f"{exc.plugin}: {exc.code} {exc.msg}\n{bed.agent_log()}") from exc
    finally:
        server.kill()
        server.wait()
        in_ns(bed.node_ns, "ip", "addr", "del", f"{node_address}/32", "dev", "lo", check=False)
        bed.delete_pod_namespace(pod)
