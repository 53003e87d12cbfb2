"""The lab cluster: an underlay namespace with a bridge and etcd, one namespace per node running a
real ``contiv-agent``, and ``contiv-ksr`` reflecting a directory of manifests.

:class:`Lab` is a thin facade over the lab's parts (see docs/lab.md, "The lab's parts"):
:mod:`~apps.lab.state` (what the lab made), :mod:`~apps.lab.etcd`, :mod:`~apps.lab.runtime`
(how the apps run), :mod:`~apps.lab.dataplane` (what a node's dataplane needs),
:mod:`~apps.lab.nodes` and :mod:`~apps.lab.observe` (readiness, convergence).

Nothing here touches the host namespace's routes, sysctls or firewall: every link, address and
process lives in namespaces named ``<lab>-*``, which ``down`` removes (also after a crash, by
name, when the state file is gone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apps.lab import netns, observe
from apps.lab.dataplane import Dataplane, dataplane_of
from apps.lab.errors import LabError
from apps.lab.etcd import EtcdRunner
from apps.lab.nodes import AGENT_PLUGINS, HANDLER_ORDER, Nodes
from apps.lab.runtime import Runtime, runtime_of
from apps.lab.state import LabState, NodeState, write_manifest

__all__ = ["AGENT_PLUGINS", "HANDLER_ORDER", "Lab", "LabError"]


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

    @property
    def runtime(self) -> Runtime:
        return runtime_of(self.state)

    @property
    def dataplane(self) -> Dataplane:
        return dataplane_of(self.state.dataplane)

    @property
    def etcd(self) -> EtcdRunner:
        return EtcdRunner(self.state)

    @property
    def nodes(self) -> Nodes:
        return Nodes(self.state, self.runtime, self.dataplane)

    def _log(self, what: str) -> Path:
        return self.state.log_path(what)

    # ------------------------------------------------------------------ up / down

    def up(self, nodes: int, agent_overlay: dict[str, Any] | None = None,
           etcd_members: int = 1, image: str = "", dataplane: str = "linux") -> None:
        dataplane_of(dataplane).check()  # says so at once where, say, no VPP is installed
        if etcd_members < 1 or etcd_members % 2 == 0 or etcd_members > 7:
            raise LabError(f"--etcd-members must be 1, 3, 5 or 7, got {etcd_members}")
        self.state.etcd_members = etcd_members
        if self.exists:
            raise LabError(f"lab {self.name!r} is already up ({self.root}); run 'contiv-lab down' first")
        if nodes < 1 or nodes > 200:
            raise LabError(f"--nodes must be between 1 and 200, got {nodes}")
        for stale in netns.ns_list(self.name + "-"):
            netns.ns_delete(stale)
        self.state.image = image
        self.runtime.check(self.state)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.manifests.mkdir(exist_ok=True)
        self.state.agent_overlay = agent_overlay or {}
        self.state.dataplane = dataplane
        self.state.save()
        try:
            parts = self.nodes
            parts.underlay()
            self.etcd.start()
            write_manifest(self.state, "namespace-default.yaml", {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
            parts.start_ksr()
            for _ in range(nodes):
                # One agent at a time: node N allocates node ID N (agents started together race
                # for IDs, and the lab's addresses and users' expectations follow the index).
                added = parts.add(wait=False)
                self.wait_agent_ready(added.name)
            self.wait_converged()
        except BaseException:
            self.state.save()
            raise
        self.state.save()

    def down(self) -> list[str]:
        """Remove everything this lab made; returns what was removed. Works without a state file."""
        removed = self.runtime.remove_all(self.state)
        pids = [p for p in [self.state.ksr_pid, *self.etcd.pids(),
                            *(n.agent_pid for n in self.state.nodes.values()),
                            *(p.echo_pid for p in self.state.pods.values())] if p]
        netns.kill_pids([p for p in pids if netns.pid_alive(p)])
        return removed + netns.remove_lab(self.name + "-", self.root)

    def etcd_stop(self) -> None:
        self.etcd.stop()

    def etcd_start(self) -> None:
        self.etcd.start_again()

    # ------------------------------------------------------------------ nodes

    def add_node(self, wait: bool = True) -> NodeState:
        return self.nodes.add(wait=wait)

    def start_agent(self, name: str) -> None:
        self.nodes.start_agent(name)

    def kill_agent(self, name: str, sig: int = 9) -> None:
        self.nodes.kill_agent(name, sig=sig)

    def remove_node(self, name: str, force: bool = False) -> None:
        """Remove a node; ``force``: one that still runs pods dies with them (no CNI DEL)."""
        self.nodes.remove(name, force=force)

    def node(self, name: str) -> NodeState:
        return self.state.node(name)

    # ------------------------------------------------------------------ observe

    def agent_ready(self, name: str) -> dict[str, Any] | None:
        return observe.agent_ready(self.state, name)

    def wait_agent_ready(self, name: str, timeout_s: float = 60.0) -> None:
        observe.wait_agent_ready(self.state, name, timeout_s)

    def internal_state(self, name: str) -> dict[str, Any] | None:
        """The agent's ``/controller/internal-state`` (what each handler believes)."""
        return observe.internal_state(self.state, name)

    def data_ip(self, node: NodeState) -> str:
        """The node's dataplane address: its eth0's, or with VPP the one on VPP's data NIC."""
        return self.dataplane.data_ip(node)

    def mesh_gaps(self) -> list[str]:
        """What keeps the node mesh from being complete (empty when every agent has every peer)."""
        return observe.mesh_gaps(self.state, self.dataplane)

    def wait_converged(self, timeout_s: float = 60.0) -> None:
        """Wait until every agent has a mesh entry for exactly the other lab nodes."""
        observe.wait_converged(self.state, self.dataplane, timeout_s)
