"""Dataplane-neutral service intent: what the processor makes of Services and EndpointSlices.

A :class:`ServiceIntent` holds, per service port, its frontends (address, protocol, port) and
the backends each frontend balances over, with the Kubernetes semantics already applied
(traffic policies, terminating fallback, named ports). Renderers (:class:`Renderer`) turn
intents into dataplane values; they never look at Kubernetes objects.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any


class FrontendKind(enum.StrEnum):
    CLUSTER_IP = "cluster-ip"
    NODE_PORT = "node-port"
    EXTERNAL_IP = "external-ip"
    LOAD_BALANCER = "load-balancer"


# Plain dataclasses, not pydantic models: the processor makes ~10 of them per service and 10k
# services must be processed in well under a second. Treat them as immutable (Backend and
# Frontend are not declared frozen only because a frozen dataclass's __init__ is ~3x slower).


@dataclass(slots=True, unsafe_hash=True)
class Backend:
    """One endpoint address and port; ``local`` when it runs on this node."""

    ip: str
    port: int
    node: str = ""
    local: bool = False
    ready: bool = True
    terminating: bool = False
    pod: str = ""  # "<namespace>/<name>" from the endpoint's targetRef, when known


@dataclass(slots=True, unsafe_hash=True)
class Frontend:
    """Where a service port is reached.

    ``local_only``: balance over this node's backends only (``externalTrafficPolicy: Local``
    for external kinds, ``internalTrafficPolicy: Local`` for ClusterIPs). ``masquerade``: SNAT
    to the node so replies come back through it (external traffic policy Cluster).
    """

    ip: str
    protocol: str  # tcp, udp, sctp
    port: int
    kind: FrontendKind
    local_only: bool = False
    masquerade: bool = False

    @property
    def triple(self) -> tuple[str, str, int]:
        return (self.ip, self.protocol, self.port)


@dataclass(frozen=True, slots=True)
class ServicePortIntent:
    """One port of a service: its frontends and usable backends (cluster-wide and local)."""

    name: str
    protocol: str
    frontends: tuple[Frontend, ...] = ()
    backends: tuple[Backend, ...] = ()
    local_backends: tuple[Backend, ...] = ()
    affinity_timeout_s: int = 0  # sessionAffinity ClientIP: > 0

    def backends_for(self, frontend: Frontend) -> tuple[Backend, ...]:
        return self.local_backends if frontend.local_only else self.backends


@dataclass(frozen=True, slots=True)
class ServiceIntent:
    """A service as the dataplane should see it; ``skipped`` says why it configures nothing."""

    namespace: str
    name: str
    ports: tuple[ServicePortIntent, ...] = ()
    skipped: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (REST, internal state)."""
        return dataclasses.asdict(self, dict_factory=lambda items: {
            k: (v.value if isinstance(v, enum.Enum) else v) for k, v in items})
