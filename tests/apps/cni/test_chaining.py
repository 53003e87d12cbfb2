"""contiv-cni first in a conflist, Debian's portmap and tuning chained after it.

The test is the runtime (apps.cni.runtime, libcni's rules for prevResult and runtimeConfig);
every plugin runs inside a "node" namespace, so portmap's iptables rules never touch the host.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from apps.cni.runtime import CNIPluginError, CNIRuntime, RuntimeConf
from plugins.podmanager.cnicodes import CNICode
from tests.apps.cni.conftest import Agent, Namespaces, run

pytestmark = pytest.mark.netns

MAC = "c2:00:00:aa:bb:cc"


def conflist(version: str, socket: str) -> dict[str, Any]:
    return {
        "cniVersion": version,
        "name": "contiv-k8s",
        "plugins": [
            {"type": "contiv-cni", "grpcServer": socket},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            {"type": "tuning", "mac": MAC, "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
        ],
    }


def nat_rules(node: str) -> str:
    return run("ip", "netns", "exec", node, "iptables", "-t", "nat", "-S").stdout


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
async def test_portmap_and_tuning_accept_our_result(
    runtime: CNIRuntime, agent: Agent, namespaces: Namespaces, version: str
) -> None:
    pod_ns = namespaces.create("pod")
    netns = f"/var/run/netns/{pod_ns}"
    cid = uuid.uuid4().hex
    rt = RuntimeConf.for_pod(
        cid, netns, "web", "default",
        capability_args={
            "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]
        },
    )
    nets = conflist(version, agent.socket)

    result = await asyncio.to_thread(runtime.add_network_list, nets, rt)
    # tuning found our pod interface (by name and sandbox) in the chained result.
    (eth0,) = [i for i in result["interfaces"] if i["name"] == "eth0"]
    assert eth0 == {"name": "eth0", "mac": MAC, "sandbox": netns}
    assert MAC in run("ip", "-n", pod_ns, "link", "show", "eth0").stdout
    assert run("ip", "netns", "exec", pod_ns, "sysctl", "-n",
               "net.ipv4.conf.eth0.arp_notify").stdout.strip() == "1"
    # portmap found the pod address in our result and mapped the port to it.
    assert any(ip["address"] == "10.99.0.2/24" for ip in result["ips"])
    rules = nat_rules(agent.node)
    assert "--dport 18080" in rules and "10.99.0.2:80" in rules

    if version != "0.3.1":
        # Debian's portmap 1.1.1 fails CHECK for IPv4-only pods by looking for an ip6tables
        # chain it never created (containernetworking/plugins#819, fixed upstream later), so
        # CHECK runs the list without it; its ADD and DEL are exercised above and below.
        checked = {**nets, "plugins": [p for p in nets["plugins"] if p["type"] != "portmap"]}
        await asyncio.to_thread(runtime.check_network_list, checked, rt, result)
        run("ip", "-n", pod_ns, "route", "del", "default")
        with pytest.raises(CNIPluginError) as err:
            await asyncio.to_thread(runtime.check_network_list, checked, rt, result)
        assert err.value.plugin == "contiv-cni" and err.value.code == CNICode.CHECK_FAILED

    await asyncio.to_thread(runtime.del_network_list, nets, rt, result)
    assert "18080" not in nat_rules(agent.node)
    assert agent.plugin.local_pods() == {}
    assert "eth0" not in run("ip", "-n", pod_ns, "link").stdout
    # DEL again, as runtimes do after a failure: still fine.
    await asyncio.to_thread(runtime.del_network_list, nets, rt, result)


async def test_failed_add_stops_the_chain(
    runtime: CNIRuntime, agent: Agent, namespaces: Namespaces, cni_bin: Path
) -> None:
    pod_ns = namespaces.create("pod")
    rt = RuntimeConf.for_pod(
        uuid.uuid4().hex, f"/var/run/netns/{pod_ns}", "web", "default",
        capability_args={"portMappings": [{"hostPort": 18081, "containerPort": 80,
                                           "protocol": "tcp"}]},
    )
    agent.controller.fail_next.append("no free address in 10.1.1.0/28 (13 addresses)")
    with pytest.raises(CNIPluginError) as err:
        await asyncio.to_thread(
            runtime.add_network_list, conflist("1.0.0", agent.socket), rt
        )
    assert err.value.plugin == "contiv-cni" and err.value.code == CNICode.ADD_FAILED
    assert "10.1.1.0/28" in err.value.msg
    assert "18081" not in nat_rules(agent.node)
    assert agent.plugin.local_pods() == {}
