"""The ``ipnet`` plugin: pod and node connectivity as a controller event handler.

On each event it computes dataplane-neutral intent (:mod:`plugins.ipnet.intent`) and puts the
values its renderer makes of it into the event's transaction:

* resync: this node's base config, every local pod (with its IPAM address) and the mesh to
  every other node;
* ``AddPod``: allocate the pod IP, wire the pod, fill the CNI result fields of the event;
* ``DeletePod``: un-wire the pod and release its IP;
* ``NodeUpdate``: add, change or remove the mesh entries of that node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from core.plugin import Plugin
from plugins.controller.api import Event, EventHandler, EventMethod, KubeStateReader, Transaction
from plugins.ipam.api import IPAMAPI
from plugins.ipnet.compute import IntentError, node_intent, pod_intent, remote_node_intent
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.intent import NodeIntent, PodIntent, RemoteNodeIntent, Transport
from plugins.ipnet.renderer import Renderer, make_renderer
from plugins.ipnet.stn import StolenNic, fetch_stolen_nic
from plugins.nodesync.api import Node, NodeSyncAPI, NodeUpdate
from plugins.podmanager.api import (
    AddPod,
    DeletePod,
    LocalPod,
    PodID,
    PodInterface,
    PodIPAddress,
    PodManagerAPI,
    PodRoute,
)


def _diff(txn: Transaction, old: Mapping[str, BaseModel], new: Mapping[str, BaseModel]) -> None:
    """Delete what only ``old`` has, put everything of ``new``."""
    for key in old:
        if key not in new:
            txn.delete(key)
    for key, value in new.items():
        txn.put(key, value)


class IPNetPlugin(Plugin, EventHandler):
    """Name ``ipnet``; deps ``ipam``, ``nodesync``, ``podmanager``. Implements
    :class:`plugins.ipnet.api.IPNetAPI`.

    An :class:`~plugins.controller.api.EventHandler` (the controller adopts it at start).
    Optional: ``renderer`` (instead of the one ``dataplane`` selects).
    """

    #: AddPods/DeletePods of different pods may be updated before one commit (batch.py).
    supports_batching = True

    name = "ipnet"
    Config = IPNetConfig
    config: IPNetConfig

    def __init__(
        self,
        config: IPNetConfig | None = None,
        *,
        ipam: IPAMAPI,
        nodesync: NodeSyncAPI,
        podmanager: PodManagerAPI,
        renderer: Renderer | None = None,
    ) -> None:
        super().__init__(config)
        self.ipam = ipam
        self.nodesync = nodesync
        self.podmanager = podmanager
        self.renderer = renderer if renderer is not None else make_renderer(self.config)
        self.node: NodeIntent | None = None
        #: STN mode: the NIC contiv-stn stole for VPP (fetched in ``init``).
        self.stolen: StolenNic | None = None
        self.pods: dict[PodID, PodIntent] = {}
        self.remotes: dict[str, RemoteNodeIntent] = {}
        # What the last AddPod changed, for revert: (pod, previous intent, IP newly allocated).
        #: Per pod of an AddPod not committed yet: (previous intent, address freshly allocated).
        self._last_adds: dict[PodID, tuple[PodIntent | None, bool]] = {}

    async def init(self) -> None:
        if self.config.stn:
            await self._fetch_stolen_nic()
        self.log.info("dataplane %s, transport %s", self.config.dataplane,
                      "nooverlay" if self.config.nooverlay else f"vxlan (VNI {self.config.vni})")

    async def _fetch_stolen_nic(self) -> None:
        """STN mode: the stolen NIC from contiv-stn, handed to the renderer (before any resync)."""
        if not self.renderer.supports_stn:
            raise ValueError(f"ipnet.stn: the {self.renderer.name!r} renderer has no STN mode")
        cfg = self.config
        self.stolen = await fetch_stolen_nic(cfg.stn_socket, cfg.stn_interface, cfg.stn_timeout_s, self.log)
        self.renderer.use_stolen_nic(self.stolen)

    # ---------------------------------------------------------------------------- IPNetAPI

    def dataplane(self) -> str:
        return self.config.dataplane

    def node_namespace(self) -> str:
        return self.config.node_namespace

    def pod_interface_name(self, pod: PodID) -> str | None:
        intent = self.pods.get(pod)
        return None if intent is None else self.renderer.pod_interface_name(intent)

    def outbound_interfaces(self) -> tuple[str, ...]:
        return self.renderer.outbound_interfaces(vxlan=not self.config.nooverlay)

    def host_interface(self) -> str:
        return self.renderer.host_interface()

    # ---------------------------------------------------------------------------- intent

    def _compute_node(self) -> NodeIntent:
        me = self.nodesync.nodes().get(self.nodesync.node_name())
        published = me.ip_addresses[0] if me is not None and me.ip_addresses else None
        node = node_intent(
            self.ipam.plan(),
            self.nodesync.node_name(),
            node_ip=published,
            transport=Transport.NOOVERLAY if self.config.nooverlay else Transport.VXLAN,
            vni=self.config.vni,
            mtu=self.config.mtu,
        )
        if self.stolen is not None:  # STN: the node's address is the stolen NIC's
            node = node.model_copy(update={"node_ip": self.stolen.node_ip})
        return node

    def _node(self) -> NodeIntent:
        if self.node is None:
            self.node = self._compute_node()
        return self.node

    def _pod(self, pod: LocalPod, ip: Any) -> PodIntent:
        return pod_intent(
            self._node(), pod_name=pod.name, pod_namespace=pod.namespace,
            container_id=pod.container_id, netns_path=pod.netns_path, ip=ip,
            interface_name=pod.interface_name,
        )

    def _remote(self, node: Node) -> RemoteNodeIntent | None:
        try:
            return remote_node_intent(
                self._node(), self.ipam.plan(node.id), node.name,
                published_ips=node.ip_addresses, mgmt_addresses=node.mgmt_addresses,
            )
        except (IntentError, ValueError) as exc:
            self.log.warning("node %s left out of the mesh: %s", node.name, exc)
            return None

    def _render_remote(self, remote: RemoteNodeIntent | None) -> Mapping[str, BaseModel]:
        return {} if remote is None else self.renderer.render_remote_node(self._node(), remote)

    # ---------------------------------------------------------------------------- hooks

    def handles_event(self, event: Event) -> bool:
        if event.method is not EventMethod.UPDATE:
            return True
        return isinstance(event, (AddPod, DeletePod, NodeUpdate))

    def resync(
        self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction
    ) -> None:
        node = self.node = self._compute_node()
        for key, value in self.renderer.render_node(node).items():
            txn.put(key, value)
        self.pods = {}
        self._last_adds.clear()
        for pod_id, pod in sorted(self.podmanager.local_pods().items()):
            ip = self.ipam.pod_ip(pod_id)
            if ip is None:
                self.log.warning("local pod %s has no IP allocation: not wired", pod_id)
                continue
            if not os.path.exists(pod.netns_path):
                # The sandbox is gone (e.g. while the agent was down); its DEL will follow.
                # Wiring it would fail on every resync and keep the agent unhealthy.
                self.log.warning("local pod %s: namespace %s is gone, not wired", pod_id,
                                 pod.netns_path)
                continue
            try:
                intent = self._pod(pod, ip)
            except IntentError as exc:
                self.log.warning("local pod %s not wired: %s", pod_id, exc)
                continue
            self.pods[pod_id] = intent
            for key, value in self.renderer.render_pod(node, intent).items():
                txn.put(key, value)
        self.remotes = {}
        for name, other in sorted(self.nodesync.nodes().items()):
            if name == node.node_name:
                continue
            remote = self._remote(other)
            if remote is not None:
                self.remotes[name] = remote
                for key, value in self._render_remote(remote).items():
                    txn.put(key, value)

    def update(self, event: Event, txn: Transaction) -> str | None:
        if isinstance(event, AddPod):
            return self._add_pod(event, txn)
        if isinstance(event, DeletePod):
            return self._delete_pod(event, txn)
        if isinstance(event, NodeUpdate):
            return self._node_update(event, txn)
        return None

    def revert(self, event: Event) -> None:
        if not isinstance(event, AddPod):
            return
        pending = self._last_adds.pop(event.pod.id, None)
        if pending is None:
            return
        previous, fresh_ip = pending
        if previous is None:
            self.pods.pop(event.pod.id, None)
        else:
            self.pods[event.pod.id] = previous
        if fresh_ip:
            self.ipam.release_pod_ip(event.pod.id)

    def describe_internal_state(self) -> dict[str, object]:
        return {
            "node": None if self.node is None else self.node.model_dump(mode="json"),
            "stolen_nic": None if self.stolen is None else self.stolen.model_dump(mode="json"),
            "pods": {str(k): v.model_dump(mode="json") for k, v in sorted(self.pods.items())},
            "remotes": {k: v.model_dump(mode="json") for k, v in sorted(self.remotes.items())},
        }

    # ---------------------------------------------------------------------------- events

    def _add_pod(self, event: AddPod, txn: Transaction) -> str:
        pod = event.pod
        node = self._node()
        previous = self.pods.get(pod.id)
        fresh_ip = self.ipam.pod_ip(pod.id) is None
        # The allocation is written to disk while the pod is wired; the pod manager waits for
        # it before the CNI reply hands the address out.
        ip = self.ipam.allocate_pod_ip(pod.id, defer_save=True)
        event.before_reply.append(self.ipam.persisted)
        self._last_adds[pod.id] = (previous, fresh_ip)
        try:
            intent = self._pod(pod, ip)
        except IntentError:
            if fresh_ip:
                self.ipam.release_pod_ip(pod.id)
            self._last_adds.pop(pod.id, None)
            raise
        old_values = {} if previous is None else self.renderer.render_pod(node, previous)
        _diff(txn, old_values, self.renderer.render_pod(node, intent))
        self.pods[pod.id] = intent
        hosts = [PodInterface(name=name, mac=mac)
                 for name, mac in self.renderer.result_host_interfaces(intent)]
        event.interfaces = [
            *hosts,
            PodInterface(name=intent.interface_name, mac=intent.pod_mac, sandbox=pod.netns_path),
        ]
        event.ip_addresses = [PodIPAddress(address=str(intent.ip_address),
                                           gateway=str(intent.gateway), interface=len(hosts))]
        event.routes = [PodRoute(dst="0.0.0.0/0", gw=str(intent.gateway))]
        return f"pod {pod.id} wired with {intent.ip_address}"

    def _delete_pod(self, event: DeletePod, txn: Transaction) -> str | None:
        pod = event.pod
        self._last_adds.pop(pod.id, None)
        intent = self.pods.pop(pod.id, None)
        if intent is None:
            ip = self.ipam.pod_ip(pod.id)
            if ip is not None:
                try:
                    intent = self._pod(pod, ip)
                except IntentError:
                    intent = None
        if intent is not None:
            for key in self.renderer.render_pod(self._node(), intent):
                txn.delete(key)
        self.ipam.release_pod_ip(pod.id)
        return None if intent is None else f"pod {pod.id} un-wired, {intent.ip_address} released"

    def _node_update(self, event: NodeUpdate, txn: Transaction) -> str | None:
        if event.node_name == self._node().node_name:
            return self._own_node_changed(txn)
        old = self.remotes.pop(event.node_name, None)
        new = self._remote(event.new) if event.new is not None else None
        if old == new:
            if new is not None:
                self.remotes[event.node_name] = new
            return None
        _diff(txn, self._render_remote(old), self._render_remote(new))
        if new is not None:
            self.remotes[event.node_name] = new
            return f"mesh to node {event.node_name} via {new.node_ip}"
        return f"mesh to node {event.node_name} removed"

    def _own_node_changed(self, txn: Transaction) -> str | None:
        """This node's published IP changed: re-render everything that depends on it."""
        old_node = self._node()
        new_node = self._compute_node()
        if new_node == old_node:
            return None
        old_values: dict[str, BaseModel] = dict(self.renderer.render_node(old_node))
        for intent in self.pods.values():
            old_values.update(self.renderer.render_pod(old_node, intent))
        for remote in self.remotes.values():
            old_values.update(self.renderer.render_remote_node(old_node, remote))
        self.node = new_node
        new_values: dict[str, BaseModel] = dict(self.renderer.render_node(new_node))
        for intent in self.pods.values():
            new_values.update(self.renderer.render_pod(new_node, intent))
        remotes: dict[str, RemoteNodeIntent] = {}
        for name, other in self.nodesync.nodes().items():
            fresh = None if name == new_node.node_name else self._remote(other)
            if fresh is not None:
                remotes[name] = fresh
                new_values.update(self.renderer.render_remote_node(new_node, fresh))
        self.remotes = remotes
        _diff(txn, old_values, new_values)
        return f"this node's address is now {new_node.node_ip}"
