"""The cluster as netctl sees it: the etcd snapshot plus each agent's REST, read on demand.

Every ``*_view`` returns ``(data, rows, columns)``: ``data`` is what ``-o json|yaml`` prints,
``rows``/``columns`` the table. An agent that cannot be reached becomes a warning (stderr) and
makes the command exit with EXIT_AGENT after printing what it could.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from apps.netctl.sources import (
    EXIT_AGENT,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    Agent,
    AgentTLS,
    NetctlError,
    Snapshot,
    default_agents,
    read_etcd,
)


def _plain(ip: Any) -> str:
    return str(ip).split("/")[0] if ip else ""


class Cluster:
    """Reads etcd once, agents as asked; collects warnings about what it could not read."""

    def __init__(self, etcd: list[str], agents: dict[str, Agent] | None, token: str,
                 environ: Mapping[str, str], etcd_timeout_s: float = 3.0, tls: AgentTLS | None = None) -> None:
        self._tls = tls
        self._etcd = etcd
        self._agents = agents
        self._token = token
        self._environ = environ
        self._timeout = etcd_timeout_s
        self._snap: Snapshot | None = None
        self.warnings: list[str] = []
        self.agent_failed = False

    @property
    def snap(self) -> Snapshot:
        if self._snap is None:
            self._snap = read_etcd(self._etcd, self._timeout, self._environ)
        return self._snap

    def agents(self) -> dict[str, Agent]:
        if self._agents is None:
            self._agents = default_agents(self.snap, self._environ, self._token, self._tls)
        return self._agents

    def nodes(self) -> list[str]:
        """Every node known to etcd (KSR's node objects and allocated IDs) or to the agent map."""
        names = set(self.snap.k8s("node")) | set(self.snap.node_ids())
        if self._agents:
            names |= set(self._agents)
        return sorted(names)

    def pick(self, node: str | None) -> list[str]:
        nodes = self.nodes()
        if node is None:
            return nodes
        if node not in nodes:
            raise NetctlError(f"no node {node!r} (nodes: {', '.join(nodes) or 'none'})", EXIT_NOT_FOUND)
        return [node]

    def agent_get(self, node: str, path: str, required: bool = False) -> Any:
        """The agent's answer, or None (with a warning) when it cannot be had."""
        agent = self.agents().get(node)
        try:
            if agent is None:
                raise NetctlError(f"no way to reach the agent of {node}: it has no management "
                                  "address in etcd and no --agent/CONTIV_AGENTS entry", EXIT_AGENT)
            return agent.get(path)
        except NetctlError as err:
            if required:
                raise
            self.warnings.append(str(err))
            self.agent_failed = True
            return None

    # ------------------------------------------------------------------ views

    def nodes_view(self) -> tuple[Any, list[dict[str, Any]], list[str]]:
        ids = self.snap.node_ids()
        k8s = self.snap.k8s("node")
        rows = []
        for name in self.nodes():
            rec = ids.get(name, {})
            ready = self.agent_get(name, "/readiness")
            k8s_ips = [a.get("address") for a in (k8s.get(name) or {}).get("addresses") or []
                       if a.get("type") == "InternalIP"]
            rows.append({
                "id": rec.get("id"),
                "name": name,
                "ip": rec.get("ip_addresses") or k8s_ips,
                "mgmt": rec.get("mgmt_addresses") or [],
                "agent": "unreachable" if ready is None else ("ready" if ready.get("ready") else "not ready"),
                "not_ok": sorted(c for c, s in ((ready or {}).get("components") or {}).items()
                                 if not s.get("ok")),
            })
        return rows, rows, ["id", "name", "ip", "mgmt", "agent", "not_ok"]

    def pods_view(self, node: str | None) -> tuple[Any, list[dict[str, Any]], list[str]]:
        self.pick(node)
        records = {(r.get("namespace"), r.get("name")): r for r in self.snap.pod_records()}
        rows = []
        for pod in self.snap.k8s("pod").values():
            if not isinstance(pod, dict) or (node and pod.get("node_name") != node):
                continue
            rec = records.get((pod.get("namespace"), pod.get("name")), {})
            ifaces = ((rec.get("result") or {}).get("interfaces")) or []
            rows.append({
                "namespace": pod.get("namespace"),
                "name": pod.get("name"),
                "node": pod.get("node_name"),
                "ip": pod.get("ip_address"),
                "interface": rec.get("interface_name") or ("host network" if pod.get("host_network") else ""),
                "host_interface": next((i.get("name") for i in ifaces if not i.get("sandbox")), ""),
                "phase": pod.get("phase"),
            })
        rows.sort(key=lambda r: (str(r["node"]), str(r["namespace"]), str(r["name"])))
        return rows, rows, ["namespace", "name", "node", "ip", "interface", "host_interface", "phase"]

    def ipam_view(self, node: str | None) -> tuple[Any, list[dict[str, Any]], list[str]]:
        nodes = self.pick(node)
        ids = self.snap.node_ids()
        data: list[dict[str, Any]] = []
        for name in nodes:
            plan = self.agent_get(name, "/contiv/v1/ipam") or {}
            allocs = self.agent_get(name, "/contiv/v1/ipam/allocations") if plan else None
            if allocs is None:
                etcd_allocs = [a for a in self.snap.allocations() if a["node"] == name]
                allocs = {"allocations": [{"namespace": a.get("pod_namespace"), "name": a.get("pod_name"),
                                           "ip": a.get("ip_address")} for a in etcd_allocs],
                          "allocated": len(etcd_allocs), "capacity": None, "source": "etcd"}
            capacity = allocs.get("capacity")
            allocated = allocs.get("allocated", len(allocs.get("allocations") or []))
            data.append({
                "id": plan.get("nodeId", (ids.get(name) or {}).get("id")),
                "node": name,
                "node_ip": plan.get("nodeIP"),
                "pod_subnet": plan.get("podSubnetThisNode"),
                "gateway": plan.get("podGateway"),
                "vxlan_ip": plan.get("vxlanIP"),
                "host_network": plan.get("vppHostNetwork"),
                "pod_network": plan.get("podNetwork"),
                "service_network": plan.get("serviceNetwork"),
                "allocated": allocated,
                "free": None if capacity is None else capacity - allocated,
                "allocations": allocs.get("allocations") or [],
            })
        if node is None:
            return data, data, ["id", "node", "node_ip", "pod_subnet", "gateway", "vxlan_ip",
                                "allocated", "free"]
        one = data[0]
        rows = sorted(one["allocations"], key=lambda a: tuple(int(x) for x in _plain(a.get("ip")).split(".")
                                                               if x.isdigit()))
        return one, rows, ["ip", "namespace", "name"]

    def from_agents(self, path: str, node: str | None, key: str | None) -> list[dict[str, Any]]:
        """Items answered by each agent, with ``node`` added: the list under ``key``, a list
        answer itself, a mapping of names to objects as rows, or (``key`` None) one object."""
        out: list[dict[str, Any]] = []
        nodes = self.pick(node)
        for name in nodes:
            got = self.agent_get(name, path, required=node is not None)
            if got is None:
                continue
            items = got.get(key, got) if isinstance(got, dict) and key else got
            if isinstance(items, dict) and key and all(isinstance(v, dict) for v in items.values()):
                items = [{"name": k, **v} if isinstance(v, dict) else {"name": k, "value": v}
                         for k, v in items.items()]
            for item in items if isinstance(items, list) else [items]:
                out.append({"node": name, **item} if isinstance(item, dict) else {"node": name, "value": item})
        return out

    def scheduler_view(self, action: str, node: str | None, key: str | None,
                       view: str) -> tuple[Any, list[dict[str, Any]], list[str]]:
        if action == "status" and not key:
            raise NetctlError("scheduler status needs a KEY", EXIT_USAGE)
        if action == "dump":
            rows = self.from_agents(f"/scheduler/dump?view={view}", node, "values")
            return rows, rows, ["node", "key", "origin", "value"]
        if action == "status":
            rows = self.from_agents(f"/scheduler/status?key={quote(key or '', safe='')}", node, None)
            return rows, rows, ["node", "key", "state", "descriptor", "last_operation", "error", "waiting_for"]
        rows = self.from_agents("/scheduler/txn-history", node, "txns")
        for r in rows:
            r["ops"] = len(r.get("operations") or [])
            r["errors"] = sorted(r.get("errors") or {})
        return rows, rows, ["node", "seq", "kind", "ok", "ops", "duration_s", "errors", "description"]

    def events_view(self, node: str | None) -> tuple[Any, list[dict[str, Any]], list[str]]:
        rows = self.from_agents("/controller/event-history", node, "events")
        for r in rows:
            r["handlers"] = [h.get("handler") for h in r.get("handlers") or [] if isinstance(h, dict)]
        return rows, rows, ["node", "seq", "name", "method", "duration_ms", "error", "description"]

    def services_view(self, node: str | None) -> tuple[Any, list[dict[str, Any]], list[str]]:
        """Each agent's services (``/contiv/v1/services``); a table row per service port."""
        data = self.from_agents("/contiv/v1/services", node, "services")
        rows = []
        for svc in data:
            for port in svc.get("ports") or [{}]:
                rows.append({
                    "node": svc.get("node"), "namespace": svc.get("namespace"), "name": svc.get("name"),
                    "port": port.get("name") or port.get("protocol"),
                    "frontends": [f"{f.get('ip')}:{f.get('port')}/{f.get('protocol')} ({f.get('kind')})"
                                  for f in port.get("frontends") or []],
                    "backends": [f"{b.get('ip')}:{b.get('port')}" + ("" if b.get("ready", True) else " (not ready)")
                                 for b in port.get("backends") or []],
                })
        return data, rows, ["node", "namespace", "name", "port", "frontends", "backends"]

    def policies_view(self, node: str | None, pod: str | None) -> tuple[Any, list[dict[str, Any]], list[str]]:
        """Each agent's policy view (``/contiv/v1/policies``); a table row per local pod."""
        data = []
        rows = []
        for name in self.pick(node):
            got = self.agent_get(name, "/contiv/v1/policies", required=node is not None)
            if not isinstance(got, dict):
                continue
            data.append({"node": name, **got})
            for entry in got.get("pods") or []:
                if pod and entry.get("pod") != pod:
                    continue
                rows.append({
                    "node": name, "pod": entry.get("pod"), "ip": entry.get("ip"),
                    "policies": entry.get("policies") or [],
                    "ingress": _chain(entry.get("ingress")), "egress": _chain(entry.get("egress")),
                })
            for key, error in (got.get("bad_policies") or {}).items():
                self.warnings.append(f"{name}: policy {key} is not applied: {error}")
        if pod:
            if not rows and data:
                raise NetctlError(f"no pod {pod!r} on the agents asked (pods are NAMESPACE/NAME)", EXIT_NOT_FOUND)
            data = rows
        return data, rows, ["node", "pod", "ip", "policies", "ingress", "egress"]


def _chain(side: Any) -> str:
    """``chain (N rules)`` for a rendered side, '' when the pod is open that way."""
    if not isinstance(side, dict):
        return "open"
    return f"{side.get('chain')} ({len(side.get('rules') or [])} rules)"
