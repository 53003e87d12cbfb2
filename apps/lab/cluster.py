"""The lab cluster: an underlay namespace with a bridge and etcd, one namespace per node running a
real ``contiv-agent``, and ``contiv-ksr`` reflecting a directory of manifests.

Nothing here touches the host namespace's routes, sysctls or firewall: every link, address and
process lives in namespaces named ``<lab>-*``, which ``down`` removes (also after a crash, by
name, when the state file is gone).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from apps.lab import netns
from apps.lab.agentconfig import merge
from apps.lab.state import ETCD_HOST, UNDERLAY_PREFIX, LabState, NodeState
from core.etcdserver import EtcdServer

AGENT_PLUGINS = [
    "process", "service-label", "http", "health", "metrics", "logs", "kvdb", "kvscheduler", "controller",
    "linux", "nodesync", "ipam", "podmanager", "ipnet", "service", "policy",
]
HANDLER_ORDER = ["nodesync", "ipam", "podmanager", "ipnet", "service", "policy"]


class LabError(RuntimeError):
    """A lab operation cannot be done (the message says why)."""


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def agent_config(state: LabState, node: NodeState) -> dict[str, Any]:
    """The agent YAML of one lab node: the full vswitch with per-node state paths."""
    d = state.node_dir(node.name)
    return {
        "plugins": AGENT_PLUGINS,
        "http": {"address": "127.0.0.1", "port": 9999},
        "kvdb": {"backend": "etcd", "dial_timeout_s": 2.0, "op_timeout_s": 3.0},
        "controller": {
            "handler_order": HANDLER_ORDER,
            "delay_after_error_healing_s": 2.0,
            "dbwatcher": {"mirror_file": str(d / "mirror.sqlite"), "delay_local_resync_s": 2.0,
                          "remote_db_probing_interval_s": 1.0},
        },
        "ipam": {"state_file": str(d / "ipam.json"), "node_interface": "eth0"},
        "podmanager": {"socket_path": str(d / "cni.sock"), "records_file": str(d / "pods.json")},
        "nodesync": {"management_addresses": [node.ip.split("/")[0]]},
    }


def node_manifest(node: NodeState) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": {"kubernetes.io/hostname": node.name}},
        "spec": {},
        "status": {"addresses": [{"type": "InternalIP", "address": node.ip.split("/")[0]},
                                 {"type": "Hostname", "address": node.name}]},
    }


def write_manifest(state: LabState, filename: str, obj: dict[str, Any]) -> None:
    path = state.manifests / filename
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(obj, sort_keys=False))
    os.replace(tmp, path)


def remove_manifest(state: LabState, filename: str) -> None:
    (state.manifests / filename).unlink(missing_ok=True)


class Lab:
    """Operations on one lab, identified by its name (the namespace prefix)."""

    def __init__(self, name: str = "clab", root: Path | None = None) -> None:
        self.name = name
        self.root = root or Path("/run/contiv-lab") / name
        loaded = LabState.load(self.root)
        self.state = loaded or LabState(name=name, root=self.root)

    @property
    def exists(self) -> bool:
        return (self.root / "lab.json").exists()

    def _log(self, what: str) -> Path:
        path = self.root / "logs" / f"{what}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ up / down

    def up(self, nodes: int, agent_overlay: dict[str, Any] | None = None,
           etcd_members: int = 1, image: str = "", dataplane: str = "linux") -> None:
        if dataplane == "vpp":  # says so at once where no VPP is installed
            from apps.lab.dataplane import vpp as vpplab

            try:
                vpplab.find_or_explain()
            except RuntimeError as err:
                raise LabError(str(err)) from None
        if etcd_members < 1 or etcd_members % 2 == 0 or etcd_members > 7:
            raise LabError(f"--etcd-members must be 1, 3, 5 or 7, got {etcd_members}")
        self.state.etcd_members = etcd_members
        if self.exists:
            raise LabError(f"lab {self.name!r} is already up ({self.root}); run 'contiv-lab down' first")
        if nodes < 1 or nodes > 200:
            raise LabError(f"--nodes must be between 1 and 200, got {nodes}")
        for stale in netns.ns_list(self.name + "-"):
            netns.ns_delete(stale)
        if image:
            from apps.lab.runtime import podman as images

            for img in (image, images.ksr_image(image)):
                images.check_image(img)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.manifests.mkdir(exist_ok=True)
        self.state.agent_overlay = agent_overlay or {}
        self.state.image = image
        self.state.dataplane = dataplane
        self.state.save()
        try:
            self._underlay()
            self._etcd()
            write_manifest(self.state, "namespace-default.yaml", {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
            self._ksr()
            for _ in range(nodes):
                # One agent at a time: node N allocates node ID N (agents started together race
                # for IDs, and the lab's addresses and users' expectations follow the index).
                added = self.add_node(wait=False)
                self.wait_agent_ready(added.name)
            self.wait_converged()
        except BaseException:
            self.state.save()
            raise
        self.state.save()

    def _underlay(self) -> None:
        ns = self.state.underlay_ns
        netns.ns_add(ns)
        netns.run(["ip", "link", "add", "br0", "type", "bridge"], netns=ns)
        netns.run(["ip", "addr", "add", f"{ETCD_HOST}/24", "dev", "br0"], netns=ns)
        netns.run(["ip", "link", "set", "br0", "up"], netns=ns)

    def _etcd(self) -> None:
        if self.state.etcd_members > 1:
            from apps.lab.etcd import start_cluster

            start_cluster(self)
            return
        server = EtcdServer(data_dir=self.root / "etcd", host=ETCD_HOST, client_port=self.state.etcd_port,
                            peer_port=2380, netns=self.state.underlay_ns, log_file=self._log("etcd"))
        server.start(timeout_s=30)
        assert server.proc is not None
        self.state.etcd_pid = server.proc.pid  # ``ip netns exec`` execs etcd: the same PID
        self.state.save()

    def etcd_stop(self) -> None:
        if self.state.etcd_member_pids:
            netns.kill_pids(list(self.state.etcd_member_pids.values()))
            self.state.etcd_member_pids.clear()
        if self.state.etcd_pid:
            netns.kill_pids([self.state.etcd_pid])
            self.state.etcd_pid = None
            self.state.save()

    def etcd_start(self) -> None:
        if self.state.etcd_members > 1:
            from apps.lab.etcd import member_names, start_member

            for name in member_names(self.state.etcd_members):
                start_member(self, name)
            return
        if netns.pid_alive(self.state.etcd_pid):
            return
        self._etcd()

    def _env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, ETCD_ENDPOINTS=self.state.etcd_endpoint, PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def _ksr(self) -> None:
        cfg = self.root / "ksr.yaml"
        cfg.write_text(yaml.safe_dump({
            "plugins": ["http", "health", "metrics", "logs", "kvdb", "ksr"],
            "http": {"address": "127.0.0.1", "port": 9191},
            "kvdb": {"backend": "etcd", "dial_timeout_s": 2.0},
            "ksr": {"source": "dir", "source_dir": str(self.state.manifests), "dir_poll_interval_s": 0.2,
                    "leader_election": False, "pod_annotation_prefixes": [""]},
        }))
        self.state.ksr_pid = self._spawn("ksr", cfg, self.state.underlay_ns, self._log("ksr"), self._env())
        self.state.save()

    def _spawn(self, app: str, cfg: Path, ns: str, log: Path, env: dict[str, str], name: str = "ksr") -> int:
        """Start ``app`` ("agent" or "ksr") in ``ns``: from the source tree, or the lab's image."""
        if self.state.image:
            from apps.lab.runtime import podman as images

            return images.run_app(self, app, cfg, ns, log, env, name)
        module = "apps.vswitch.main" if app == "agent" else "apps.ksr.main"
        return netns.spawn(python_module(module, "--config", str(cfg)), ns, log, env)

    def down(self) -> list[str]:
        """Remove everything this lab made; returns what was removed. Works without a state file."""
        removed: list[str] = []
        if self.state.image:
            from apps.lab.runtime import podman as images

            removed += images.remove_containers(self.name)
        pids = [p for p in [self.state.ksr_pid, self.state.etcd_pid,
                            *self.state.etcd_member_pids.values(),
                            *(n.agent_pid for n in self.state.nodes.values()),
                            *(p.echo_pid for p in self.state.pods.values())] if p]
        netns.kill_pids([p for p in pids if netns.pid_alive(p)])
        return removed + netns.remove_lab(self.name + "-", self.root)

    # ------------------------------------------------------------------ nodes

    def add_node(self, wait: bool = True) -> NodeState:
        index = self.state.next_node_index
        if index > 250:
            raise LabError("the lab underlay has room for 250 nodes")
        self.state.next_node_index += 1
        name = f"node{index}"
        node = NodeState(name=name, index=index, netns=f"{self.name}-n{index}", ip=f"{UNDERLAY_PREFIX}{index}/24")
        netns.ns_add(node.netns)
        netns.veth(node.netns, "eth0", self.state.underlay_ns, f"n{index}")
        netns.run(["ip", "link", "set", f"n{index}", "master", "br0"], netns=self.state.underlay_ns)
        netns.run(["ip", "addr", "add", node.ip, "dev", "eth0"], netns=node.netns)
        self.state.node_dir(name).mkdir(parents=True, exist_ok=True)
        self.state.nodes[name] = node
        write_manifest(self.state, f"node-{name}.yaml", node_manifest(node))
        if self.state.dataplane == "vpp":
            from apps.lab.dataplane import vpp as vpplab

            vpplab.prepare_node(self.state, node)
        self.start_agent(name)
        self.state.save()
        if wait:
            self.wait_agent_ready(name)
            self.wait_converged()
        return node

    def start_agent(self, name: str) -> None:
        node = self.node(name)
        if netns.pid_alive(node.agent_pid):
            return
        cfg = self.state.node_dir(name) / "agent.yaml"
        config = agent_config(self.state, node)
        if self.state.dataplane == "vpp":
            from apps.lab.dataplane import vpp as vpplab

            config = merge(config, vpplab.agent_overlay(self.state, node, AGENT_PLUGINS))
        cfg.write_text(yaml.safe_dump(merge(config, self.state.agent_overlay)))
        node.agent_pid = self._spawn("agent", cfg, node.netns, self._log(f"agent-{name}"),
                                     self._env(NODE_NAME=name), f"agent-{name}")
        self.state.save()

    def kill_agent(self, name: str, sig: int = 9) -> None:
        node = self.node(name)
        if node.agent_pid:
            netns.kill_pids([node.agent_pid], sig=sig)
        node.agent_pid = None
        self.state.save()

    def remove_node(self, name: str, force: bool = False) -> None:
        """Remove a node; ``force``: one that still runs pods dies with them (no CNI DEL)."""
        node = self.node(name)
        on_node = [key for key, pod in self.state.pods.items() if pod.node == name]
        if on_node and not force:
            raise LabError(f"node {name} still runs pods: {', '.join(on_node)} "
                           "(delete them first, or --force)")
        if on_node:
            from apps.lab.nodefail import drop_pods_of_dead_node

            self.kill_agent(name, sig=9)
            drop_pods_of_dead_node(self, on_node)
        self.kill_agent(name, sig=15)
        netns.ns_delete(node.netns)
        remove_manifest(self.state, f"node-{name}.yaml")
        del self.state.nodes[name]
        shutil.rmtree(self.state.node_dir(name), ignore_errors=True)
        self.state.save()
        self.wait_converged()

    def node(self, name: str) -> NodeState:
        try:
            return self.state.nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} in lab {self.name!r} "
                           f"(nodes: {', '.join(self.state.nodes) or 'none'})") from None

    def agent_ready(self, name: str) -> dict[str, Any] | None:
        node = self.node(name)
        out = netns.run(python_module("apps.lab.http_get", "http://127.0.0.1:9999/readiness"),
                        netns=node.netns, check=False, timeout=10)
        if out.returncode not in (0, 1) or not out.stdout.strip():
            return None
        try:
            body: dict[str, Any] = json.loads(out.stdout)
            return body
        except json.JSONDecodeError:
            return None

    def wait_agent_ready(self, name: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            node = self.node(name)
            if not netns.pid_alive(node.agent_pid):
                raise LabError(f"the agent of {name} exited; see {self._log(f'agent-{name}')}")
            last = self.agent_ready(name)
            if last is not None and last.get("ready"):
                return
            time.sleep(0.2)
        raise LabError(f"the agent of {name} is not ready after {timeout_s:g}s: {last}")

    def internal_state(self, name: str) -> dict[str, Any] | None:
        """The agent's ``/controller/internal-state`` (what each handler believes)."""
        node = self.node(name)
        out = netns.run(python_module("apps.lab.http_get", "http://127.0.0.1:9999/controller/internal-state"),
                        netns=node.netns, check=False, timeout=10)
        if out.returncode != 0:
            return None
        try:
            body: dict[str, Any] = json.loads(out.stdout)
        except json.JSONDecodeError:
            return None
        return body

    def data_ip(self, node: NodeState) -> str:
        """The node's dataplane address: its eth0's, or with VPP the one on VPP's data NIC."""
        if self.state.dataplane == "vpp":
            from apps.lab.dataplane import vpp as vpplab

            return vpplab.data_ip(node)
        return node.ip.split("/")[0]

    def mesh_gaps(self) -> list[str]:
        """What keeps the node mesh from being complete (empty when every agent has every peer)."""
        gaps = []
        for node in self.state.nodes.values():
            state = self.internal_state(node.name)
            if state is None:
                gaps.append(f"{node.name}: agent not answering")
                continue
            own = ((state.get("ipnet") or {}).get("node") or {}).get("node_ip", "")
            if str(own).split("/")[0] != self.data_ip(node):
                gaps.append(f"{node.name}: uses {own or 'no address'} as its own, not {self.data_ip(node)}")
            remotes = (state.get("ipnet") or {}).get("remotes") or {}
            for peer in self.state.nodes.values():
                if peer.name == node.name:
                    continue
                entry = remotes.get(peer.name)
                if entry is None:
                    gaps.append(f"{node.name}: no mesh entry for {peer.name}")
                elif str(entry.get("node_ip", "")).split("/")[0] != self.data_ip(peer):
                    gaps.append(f"{node.name}: {peer.name} at {entry.get('node_ip')}, not {self.data_ip(peer)}")
            for gone in set(remotes) - set(self.state.nodes):
                gaps.append(f"{node.name}: still meshed with removed node {gone}")
        return gaps

    def wait_converged(self, timeout_s: float = 60.0) -> None:
        """Wait until every agent has a mesh entry for exactly the other lab nodes."""
        deadline = time.monotonic() + timeout_s
        gaps = self.mesh_gaps()
        while gaps and time.monotonic() < deadline:
            time.sleep(0.3)
            gaps = self.mesh_gaps()
        if gaps:
            raise LabError(f"the node mesh did not converge in {timeout_s:g}s: {'; '.join(gaps)}")
