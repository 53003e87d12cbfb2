"""Two (or more) nodes wired through real VPPs by the ipnet VPP renderer, for tests.

Each node: a network namespace with its own VPP, a data NIC ``eth1`` (one end of a veth pair
whose other end is the peer node's ``eth1``) attached by the agent through af_packet
(``main_interface: host-eth1``), the node's own scheduler and VPP plugin; pods are veth + af_packet
(this kernel has no vhost-net). Pod workloads are the lab's echo server (TCP and UDP).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from plugins.ipnet.compute import node_intent, pod_intent, remote_node_intent
from plugins.ipnet.config import IPNetConfig, VppRenderSettings
from plugins.ipnet.intent import NodeIntent, PodIntent
from plugins.ipnet.renderer.vpp import VppRenderer
from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.linux.netns import run_in_namespace
from plugins.linux.plugin import linux_descriptors
from plugins.vpp.config import VPPConfig
from plugins.vpp.plugin import VPPDataplanePlugin
from tests.plugins.ipnet.support import plan
from tests.vppreal import RealVPP
from tests.vppreal.fixtures import NodeVPPs

REPO = Path(__file__).resolve().parents[2]
#: Messages that only read VPP's state (anything else counts as a change).
READ_ONLY = (
    "_dump", "_get", "control_ping", "show_version", "sw_interface_get_table", "cli_inband", "show_running_config"
)


def mutating(calls: dict[str, int]) -> dict[str, int]:
    """The calls among ``calls`` that change VPP."""
    return {m: n for m, n in calls.items() if n and not any(m.endswith(r) or m == r for r in READ_ONLY)}


@dataclass
class Pod:
    intent: PodIntent
    netns: str
    echo: subprocess.Popen[str] | None = None

    @property
    def ip(self) -> str:
        return str(self.intent.ip_address.ip)


@dataclass
class Node:
    index: int
    vpp: RealVPP
    intent: NodeIntent
    renderer: VppRenderer
    scheduler: KVScheduler
    plugin: VPPDataplanePlugin
    pods: dict[str, Pod] = field(default_factory=dict)
    values: dict[str, BaseModel] = field(default_factory=dict)

    @property
    def netns(self) -> str:
        return self.vpp.netns


def settings() -> VppRenderSettings:
    return VppRenderSettings(pod_interface="veth", main_interface="host-eth1")


async def start_agent(api_socket: str, api_dir: str, **config: Any) -> tuple[KVScheduler, VPPDataplanePlugin]:
    """What the agent runs for the dataplane: a scheduler with the VPP and Linux descriptors."""
    scheduler = KVScheduler(verify=True, retry=RetryPolicy(period_s=0.2, max_attempts=8, backoff=1.5))
    cfg = VPPConfig(
        api_socket=api_socket, api_dir=api_dir, health_interval_s=0.5, reconnect_interval_s=0.2,
        connect_timeout_s=30, **config,
    )
    plugin = VPPDataplanePlugin(cfg, scheduler=scheduler)
    await plugin.init()
    for descriptor in linux_descriptors():
        scheduler.register_descriptor(descriptor)
    await plugin.after_init()
    return scheduler, plugin


class Cluster:
    """Nodes ``1..n`` with real VPPs, meshed over VXLAN through their ``eth1`` NICs."""

    def __init__(self, vpps: NodeVPPs, count: int = 2, render: VppRenderSettings | None = None) -> None:
        self.vpps = vpps
        self.count = count
        self.render = render if render is not None else settings()
        self.nodes: dict[int, Node] = {}
        self.tag = uuid.uuid4().hex[:4]
        self.pod_namespaces: list[str] = []

    async def start(self) -> Cluster:
        real = {n: self.vpps.node(f"n{n}") for n in range(1, self.count + 1)}
        if self.count == 2:  # the data link: eth1 <-> eth1
            ns1, ns2 = real[1].netns, real[2].netns
            run(["ip", "-n", ns1, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", ns2])
            for ns in (ns1, ns2):
                run(["ip", "-n", ns, "link", "set", "eth1", "up"])
        for n, vpp in real.items():
            intent = node_intent(plan(n), f"node{n}")
            renderer = VppRenderer(IPNetConfig(dataplane="vpp", node_namespace=vpp.netns), self.render)
            scheduler, plugin = await start_agent(vpp.api_socket, vpp.api_dir)
            node = Node(n, vpp, intent, renderer, scheduler, plugin)
            node.values = dict(renderer.render_node(intent))
            for m in real:
                if m != n:
                    remote = remote_node_intent(intent, plan(m), f"node{m}")
                    node.values.update(renderer.render_remote_node(intent, remote))
            self.nodes[n] = node
        for node in self.nodes.values():
            await commit(node, node.values)
        return self

    async def add_pod(self, n: int, name: str, host: int) -> Pod:
        node = self.nodes[n]
        netns = f"vpp17-{self.tag}-p{n}{name}"
        run(["ip", "netns", "add", netns])
        self.pod_namespaces.append(netns)
        run(["ip", "-n", netns, "link", "set", "lo", "up"])
        intent = pod_intent(
            node.intent, pod_name=name, pod_namespace="default", container_id=f"{self.tag}-{name}",
            netns_path=f"/var/run/netns/{netns}", ip=IPv4Address(f"10.1.{n}.{host}"),
        )
        pod = Pod(intent, netns)
        values = dict(node.renderer.render_pod(node.intent, intent))
        await commit(node, values)  # the pod's ADD: everything, offload included, before it returns
        node.values.update(values)
        pod.echo = start_echo(netns, f"default/{name}")
        node.pods[name] = pod
        return pod

    async def close(self) -> None:
        for node in self.nodes.values():
            for pod in node.pods.values():
                if pod.echo is not None:
                    pod.echo.kill()
                    pod.echo.wait()
            await node.plugin.close()
            await node.scheduler.close()
        for netns in self.pod_namespaces:
            subprocess.run(["ip", "netns", "del", netns], check=False)


@asynccontextmanager
async def running(vpps: NodeVPPs, pods: Sequence[tuple[int, str, int]]) -> AsyncIterator[Cluster]:
    """A started two-node cluster with ``pods`` (node, name, host index), closed on exit."""
    lab = Cluster(vpps)
    try:
        await lab.start()
        for n, name, host in pods:
            await lab.add_pod(n, name, host)
        yield lab
    finally:
        await lab.close()


async def commit(node: Node, values: dict[str, Any]) -> None:
    result = await node.scheduler.commit(values)
    if not result.ok:
        raise AssertionError(f"node{node.index}: {result.errors}")


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def start_echo(netns: str, name: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "apps.lab.echo", "--name", name, "--port", "8080"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the event: "echo NAME: serving 8080"
    if "serving" not in line:
        raise RuntimeError(f"echo in {netns} did not start: {line!r}")
    return proc


# ------------------------------------------------------------------------------ traffic


def _tcp(ip: str, port: int, timeout_s: float) -> str:
    with socket.create_connection((ip, port), timeout=timeout_s) as sock:
        sock.sendall(b"probe")
        return sock.makefile().readline().strip()


def _udp(ip: str, port: int, timeout_s: float) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.sendto(b"probe", (ip, port))
        return sock.recvfrom(4096)[0].decode().strip()


def _ping(ip: str) -> bool:
    return subprocess.run(["ping", "-c", "1", "-W", "1", "-q", ip], capture_output=True).returncode == 0


async def reach(netns: str, kind: str, ip: str, port: int = 8080, deadline_s: float = 60.0) -> str:
    """Try ``kind`` (ping/tcp/udp) from ``netns`` to ``ip`` until it answers or the deadline passes;
    the answer (the echo's line; "ok" for ping). Raises AssertionError naming the path."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    last: object = None
    while loop.time() < end:
        try:
            if kind == "ping":
                ok = await asyncio.to_thread(run_in_namespace, netns, lambda: _ping(ip))
                if ok:
                    return "ok"
                last = "no reply"
            else:
                fn = _tcp if kind == "tcp" else _udp
                return await asyncio.to_thread(run_in_namespace, netns, lambda: fn(ip, port, 2.0))  # noqa: B023
        except OSError as err:
            last = err
            await asyncio.sleep(0.2)
    raise AssertionError(f"{kind} from {netns} to {ip}:{port} failed until the deadline: {last}")
