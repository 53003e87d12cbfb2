"""How ipam follows the reflected Kubernetes state (its controller handler's work): the Nodes'
pod subnets with ``pod_subnet_source: kubernetes``, and the pods placed on this node (which
allocations are still in use; the addresses Kubernetes reports are adopted)."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from plugins.controller.api import AbortEventError, KubeStateReader
from plugins.ipam.plan import pod_index_of
from plugins.ipam.pusher import PutAllocation, Reconcile
from plugins.ipam.subnet import PodSubnetResync
from plugins.nodesync.api import NodeUpdate
from plugins.podmanager.api import PodID

if TYPE_CHECKING:
    from plugins.ipam.plugin import IPAMPlugin


def _pod_id(obj: Any) -> PodID:
    return PodID(getattr(obj, "name", ""), getattr(obj, "namespace", ""))


def resync(ipam: IPAMPlugin, kube_state: KubeStateReader) -> None:
    """The reflected Nodes (``kubernetes`` source) and this node's pods, from a full resync."""
    node = ipam.nodesync.node_name()
    if ipam._from_kubernetes():
        ipam.node_subnets.replace(kube_state.list("node"))
        if ipam._allocator is None:
            found = ipam.node_subnets.lookup(node)
            if found.subnet is None:
                ipam._subnet.set_pending(found)
                # The handlers after ipam need this node's plan: stop the resync here; the
                # Node's podCIDR arriving triggers a new one (PodSubnetResync).
                raise AbortEventError(ipam._subnet.pending)
            ipam._activate(found.subnet)
            ipam._push().enqueue(Reconcile())
        else:
            ipam._subnet.check(ipam.node_subnets.lookup(node))
    pods: set[PodID] = set()
    for obj in kube_state.list("pod").values():
        pod = PodID(obj.name, obj.namespace)
        if obj.node_name == node:
            pods.add(pod)
        adopt_reflected_ip(ipam, pod, getattr(obj, "ip_address", ""))
    ipam._stale.kube_pods = pods


def pod_changed(ipam: IPAMPlugin, prev: Any | None, new: Any | None) -> None:
    """A reflected pod was added, changed or deleted."""
    for obj in (prev, new):
        if obj is not None:
            ipam._stale.placed(_pod_id(obj), False)
    if new is None and prev is not None:
        kube_pod_deleted(ipam, _pod_id(prev))
    if new is not None and getattr(new, "node_name", "") == ipam.nodesync.node_name():
        pod = _pod_id(new)
        ipam._stale.placed(pod, True)
        if ipam._allocator is not None:  # else: adopted by the resync once the subnet is known
            adopt_reflected_ip(ipam, pod, getattr(new, "ip_address", ""))


def node_changed(ipam: IPAMPlugin, name: str, k8s_node: Any | None) -> str | None:
    """A reflected Node changed (``kubernetes`` source): this node's subnet may arrive, or
    another node's pod subnet change; ipnet learns of the latter from a ``NodeUpdate``."""
    changed = ipam.node_subnets.apply(name, k8s_node)
    if name == ipam.nodesync.node_name():
        found = ipam.node_subnets.lookup(name)
        if ipam._allocator is not None:
            ipam._subnet.check(found)
            return None
        if found.subnet is None:
            ipam._subnet.set_pending(found)
            return None
        ipam._activate(found.subnet)
        ipam._push().enqueue(Reconcile())
        if ipam.controller is not None:
            ipam.controller.push_follow_up(PodSubnetResync(str(found.subnet)))
        return f"this node's pod subnet is {found.subnet} (Node spec.podCIDR)"
    if not changed:
        return None
    found = ipam.node_subnets.lookup(name)
    member = ipam.nodesync.nodes().get(name)
    if member is not None and ipam.controller is not None:
        # Same node record before and after: what changed is what ipam.plan(id) returns.
        ipam.controller.push_follow_up(NodeUpdate(name, member, member))
    return f"Node {name} pod subnet: {found.describe()}"


def kube_pod_deleted(ipam: IPAMPlugin, pod: PodID) -> None:
    """Kubernetes deleted ``pod``: no stale record can bring it back; an address adopted for
    it (no pod wired here) goes now instead of after the stale grace period."""
    ipam._released.forget(pod)
    if ipam.podmanager is None or ipam.pod_ip(pod) is None:
        return
    if pod not in ipam.podmanager.local_pods():
        ipam.log.info("pod %s was deleted and is not wired here: releasing its address", pod)
        ipam.release_pod_ip(pod)
        ipam._released.forget(pod)


def adopt_reflected_ip(ipam: IPAMPlugin, pod: PodID, ip_text: str) -> None:
    """Keep an address Kubernetes reports for a pod of this subnet (Contiv's resync rule)."""
    if not ip_text:
        return
    try:
        ip = IPv4Address(ip_text)
    except ValueError:
        return
    alloc = ipam._alloc()
    if pod_index_of(alloc.subnet, ip) is None or alloc.ip_of(pod) == ip:
        return
    if ipam._released.blocks(pod, ip):
        ipam.log.info("not adopting %s of pod %s: released here by its CNI DEL (the "
                      "Kubernetes state is older than that)", ip, pod)
        return
    reason = alloc.restore(pod, ip)
    if reason is not None:
        ipam.log.warning("reflected address %s of pod %s not adopted: %s", ip, pod, reason)
        return
    ipam._saver.save_background(ipam._state(), f"adopting {ip} of pod {pod}")
    ipam._push().enqueue(PutAllocation(pod, ip))
    ipam.log.info("adopted %s of pod %s from the Kubernetes state", ip, pod)
