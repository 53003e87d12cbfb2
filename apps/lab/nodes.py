"""The lab's network and the apps on it: the underlay bridge, KSR, and the nodes (a namespace on
the bridge with an agent each; added, removed, their agents started and killed).

Which runtime starts the apps and what a node's dataplane adds are the parts'
(:mod:`apps.lab.runtime`, :mod:`apps.lab.dataplane`); this module only asks them.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import yaml

from apps.lab import etcd, netns, observe
from apps.lab.agentconfig import merge
from apps.lab.dataplane import Dataplane
from apps.lab.errors import LabError
from apps.lab.nodefail import drop_pods_of_dead_node
from apps.lab.runtime import Runtime
from apps.lab.state import ETCD_HOST, UNDERLAY_PREFIX, LabState, NodeState, remove_manifest, write_manifest

AGENT_PLUGINS = [
    "process", "service-label", "http", "health", "metrics", "logs", "kvdb", "kvscheduler", "controller",
    "linux", "nodesync", "ipam", "podmanager", "ipnet", "service", "policy",
]
HANDLER_ORDER = ["nodesync", "ipam", "podmanager", "ipnet", "service", "policy"]


def agent_config(state: LabState, node: NodeState) -> dict[str, Any]:
    """The agent YAML of one lab node: the full vswitch with per-node state paths."""
    d = state.node_dir(node.name)
    return {
        "plugins": AGENT_PLUGINS,
        "http": {"address": "127.0.0.1", "port": 9999},
        # Its own certificate: etcd user contiv-agent.<node>, which may write only this node's keys.
        "kvdb": {"backend": "etcd", "dial_timeout_s": 2.0, "op_timeout_s": 3.0,
                 "tls": etcd.kvdb_tls(state, f"agent-{node.name}")},
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


class Nodes:
    """The underlay, KSR and the nodes of one lab, run by ``runtime`` on ``dataplane``."""

    def __init__(self, state: LabState, runtime: Runtime, dataplane: Dataplane) -> None:
        self.state = state
        self.runtime = runtime
        self.dataplane = dataplane

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, ETCD_ENDPOINTS=self.state.etcd_endpoint, PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def underlay(self) -> None:
        """The underlay namespace and its bridge ``br0`` (etcd's address on it)."""
        ns = self.state.underlay_ns
        netns.ns_add(ns)
        netns.run(["ip", "link", "add", "br0", "type", "bridge"], netns=ns)
        netns.run(["ip", "addr", "add", f"{ETCD_HOST}/24", "dev", "br0"], netns=ns)
        netns.run(["ip", "link", "set", "br0", "up"], netns=ns)

    def start_ksr(self) -> None:
        state = self.state
        cfg = state.root / "ksr.yaml"
        cfg.write_text(yaml.safe_dump({
            "plugins": ["http", "health", "metrics", "logs", "kvdb", "ksr"],
            "http": {"address": "127.0.0.1", "port": 9191},
            "kvdb": {"backend": "etcd", "dial_timeout_s": 2.0, "tls": etcd.kvdb_tls(state, "ksr")},
            "ksr": {"source": "dir", "source_dir": str(state.manifests), "dir_poll_interval_s": 0.2,
                    "leader_election": False, "pod_annotation_prefixes": [""]},
        }))
        state.ksr_pid = self.runtime.start(state, "ksr", cfg, state.underlay_ns, state.log_path("ksr"),
                                           self.env(), "ksr")
        state.save()

    def add(self, wait: bool = True) -> NodeState:
        state = self.state
        index = state.next_node_index
        if index > 250:
            raise LabError("the lab underlay has room for 250 nodes")
        state.next_node_index += 1
        name = f"node{index}"
        node = NodeState(name=name, index=index, netns=f"{state.name}-n{index}", ip=f"{UNDERLAY_PREFIX}{index}/24")
        netns.ns_add(node.netns)
        netns.veth(node.netns, "eth0", state.underlay_ns, f"n{index}")
        netns.run(["ip", "link", "set", f"n{index}", "master", "br0"], netns=state.underlay_ns)
        netns.run(["ip", "addr", "add", node.ip, "dev", "eth0"], netns=node.netns)
        state.node_dir(name).mkdir(parents=True, exist_ok=True)
        state.nodes[name] = node
        etcd.ensure_pki(state, [name])  # its agent's certificate and etcd user
        etcd.apply_auth(state)
        write_manifest(state, f"node-{name}.yaml", node_manifest(node))
        self.dataplane.prepare_node(state, node)
        self.start_agent(name)
        state.save()
        if wait:
            observe.wait_agent_ready(state, name)
            observe.wait_converged(state, self.dataplane)
        return node

    def start_agent(self, name: str) -> None:
        state = self.state
        node = state.node(name)
        if netns.pid_alive(node.agent_pid):
            return
        cfg = state.node_dir(name) / "agent.yaml"
        config = merge(agent_config(state, node), self.dataplane.agent_overlay(state, node, AGENT_PLUGINS))
        cfg.write_text(yaml.safe_dump(merge(config, state.agent_overlay)))
        node.agent_pid = self.runtime.start(state, "agent", cfg, node.netns, state.log_path(f"agent-{name}"),
                                            self.env(NODE_NAME=name), f"agent-{name}")
        state.save()

    def kill_agent(self, name: str, sig: int = 9) -> None:
        node = self.state.node(name)
        if node.agent_pid:
            netns.kill_pids([node.agent_pid], sig=sig)
        node.agent_pid = None
        self.state.save()

    def remove(self, name: str, force: bool = False) -> None:
        """Remove a node; ``force``: one that still runs pods dies with them (no CNI DEL)."""
        state = self.state
        node = state.node(name)
        on_node = [key for key, pod in state.pods.items() if pod.node == name]
        if on_node and not force:
            raise LabError(f"node {name} still runs pods: {', '.join(on_node)} "
                           "(delete them first, or --force)")
        if on_node:
            self.kill_agent(name, sig=9)
            drop_pods_of_dead_node(state, on_node)
        self.kill_agent(name, sig=15)
        netns.ns_delete(node.netns)
        remove_manifest(state, f"node-{name}.yaml")
        del state.nodes[name]
        shutil.rmtree(state.node_dir(name), ignore_errors=True)
        state.save()
        observe.wait_converged(state, self.dataplane)
