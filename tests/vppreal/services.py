"""Service intent for the VPP renderer tests, shaped as the service processor produces it.

The service plugin (issue 12) is not on main yet: these dataclasses carry exactly the fields
of its ``plugins.service.intent`` model that the renderer reads (checked against its branch).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int
    node: str = ""
    local: bool = False


@dataclass(frozen=True)
class Frontend:
    ip: str
    protocol: str
    port: int
    kind: str = "cluster-ip"
    local_only: bool = False
    masquerade: bool = False


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str
    frontends: tuple[Frontend, ...] = ()
    backends: tuple[Backend, ...] = ()
    local_backends: tuple[Backend, ...] = ()
    affinity_timeout_s: int = 0

    def backends_for(self, frontend: Frontend) -> tuple[Backend, ...]:
        return self.local_backends if frontend.local_only else self.backends


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    ports: tuple[Port, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def service(
    name: str, cluster_ip: str, port: int, backends: list[tuple[str, int, str]], *, me: str,
    node_ips: tuple[str, ...] = (), node_port: int = 0, protocols: tuple[str, ...] = ("tcp",),
    local: bool = False, affinity: int = 0, external_ips: tuple[str, ...] = (),
) -> Service:
    """A service as node ``me``'s processor sees it: backends ``(ip, port, node)``; ``node_ips[0]``
    is ``me``'s address (its NodePort follows the external traffic policy ``local``), the others'
    NodePorts are there only for a cluster-wide service."""
    ports = []
    for proto in protocols:
        bes = tuple(Backend(ip, p, node, node == me) for ip, p, node in backends)
        fronts = [Frontend(cluster_ip, proto, port)]
        fronts += [Frontend(ip, proto, port, "external-ip", local, not local) for ip in external_ips]
        if node_port and node_ips:
            fronts.append(Frontend(node_ips[0], proto, node_port, "node-port", local, not local))
            if not local:
                fronts += [Frontend(ip, proto, node_port, "node-port") for ip in node_ips[1:]]
        ports.append(Port(f"{proto}-{port}", proto, tuple(fronts), bes, tuple(b for b in bes if b.local), affinity))
    return Service("default", name, tuple(ports))
