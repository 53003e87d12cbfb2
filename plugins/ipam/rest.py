"""REST face of the ipam plugin: ``GET /contiv/v1/ipam`` and ``GET /contiv/v1/ipam/allocations``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException

from plugins.ipam.api import PodSubnetPendingError

if TYPE_CHECKING:
    from plugins.ipam.plugin import IPAMPlugin


def build_router(ipam: IPAMPlugin) -> APIRouter:
    """The routes serving ``ipam``'s node plan and allocations."""
    router = APIRouter(prefix="/contiv/v1/ipam", tags=["ipam"])

    @router.get("")
    async def node_plan() -> dict[str, Any]:
        """This node's address plan (Contiv's ``/contiv/v1/ipam``) and the IPAM settings;
        503 naming the reason while the node waits for its Node's ``spec.podCIDR``."""
        try:
            plan = ipam.plan()
        except PodSubnetPendingError as exc:
            raise HTTPException(503, str(exc)) from exc
        name = ipam.nodesync.node_name()
        own = ipam.nodesync.nodes().get(name)
        published = [str(ip) for ip in own.ip_addresses] if own is not None else []
        # The address this node publishes (``ipam.node_interface``'s, or the plan's): the
        # plan's 192.168.16.<ID> may be another machine's when the node uses its interface.
        if published:
            node_ip: str | None = published[0]
        else:
            node_ip = None if ipam.config.node_interface or ipam.config.node_ip else str(plan.node_ip)
        return {
            "nodeId": plan.node_id,
            "nodeName": name,
            "nodeIP": node_ip,
            "podSubnetThisNode": str(plan.pod_subnet),
            "podSubnetSource": ipam.resolved.pod_subnet_source,
            "podGateway": str(plan.pod_gateway),
            "vppHostNetwork": str(plan.host_interconnect_subnet),
            "hostInterconnectVswitch": str(plan.host_interconnect_vswitch),
            "hostInterconnectHost": str(plan.host_interconnect_host),
            "vxlanIP": str(plan.vxlan_ip),
            "podNetwork": str(plan.pod_network),
            "vxlanNetwork": str(plan.vxlan_network),
            "serviceNetwork": str(plan.service_network),
            "podCapacity": ipam.capacity(),
            "config": ipam.config.model_dump(mode="json"),
        }

    @router.get("/allocations")
    async def allocations() -> dict[str, Any]:
        """Every pod address allocated on this node, and how far etcd is behind (503 while
        the node waits for its pod subnet)."""
        try:
            return ipam.describe()
        except PodSubnetPendingError as exc:
            raise HTTPException(503, str(exc)) from exc

    return router


def describe(ipam: IPAMPlugin) -> dict[str, Any]:
    """This node's allocations as JSON-friendly data (``GET /contiv/v1/ipam/allocations``)."""
    plan = ipam.plan()
    return {
        "nodeName": ipam.nodesync.node_name(),
        "nodeId": plan.node_id,
        "podSubnet": str(plan.pod_subnet),
        "podSubnetSource": ipam.resolved.pod_subnet_source,
        "capacity": ipam.capacity(),
        "allocated": len(ipam.allocations()),
        "lastAssigned": ipam.last_assigned_index(),
        "allocations": [
            {"namespace": pod.namespace, "name": pod.name, "ip": str(ip)}
            for pod, ip in sorted(ipam.allocations().items())
        ],
        "etcdPending": ipam.etcd_pending(),
        "etcdLastError": ipam.etcd_last_error(),
    }
