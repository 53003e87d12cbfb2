"""Pod manager interface: the pod identity, the AddPod/DeletePod events and the local pod records.

The CNI gRPC server turns each CNI ADD into a blocking :class:`AddPod` event and each DEL into a
blocking :class:`DeletePod` event. Handlers (ipam, ipnet, ...) read the request fields and fill
the result fields of :class:`AddPod` in their ``update`` hook; the server returns them to the
CNI binary once the event's transaction succeeded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from plugins.controller.api import Direction, Event, UpdateTxnType


@dataclass(frozen=True, order=True, slots=True)
class PodID:
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class LocalPod(BaseModel):
    """A pod wired on this node, as persisted by the pod manager (survives agent restarts)."""

    name: str
    namespace: str
    container_id: str
    netns_path: str
    interface_name: str = "eth0"

    @property
    def id(self) -> PodID:
        return PodID(self.name, self.namespace)


@dataclass(slots=True)
class PodInterface:
    """An interface in the CNI result (``sandbox`` is the netns path for pod-side ones)."""

    name: str
    mac: str = ""
    sandbox: str = ""


@dataclass(slots=True)
class PodIPAddress:
    """An address in the CNI result: ``address`` in CIDR form, index into the interfaces."""

    address: str
    gateway: str = ""
    interface: int = 0


@dataclass(slots=True)
class PodRoute:
    dst: str
    gw: str = ""


class AddPod(Event):
    """Wire a new pod (CNI ADD). Blocking, revert-on-failure, forward order."""

    name = "Add Pod"
    blocking = True
    txn_type = UpdateTxnType.REVERT_ON_FAILURE
    direction = Direction.FORWARD

    def __init__(self, pod: LocalPod) -> None:
        super().__init__()
        self.pod = pod
        # Result, filled by handlers.
        self.interfaces: list[PodInterface] = []
        self.ip_addresses: list[PodIPAddress] = []
        self.routes: list[PodRoute] = []
        self.dns: dict[str, list[str]] = {}
        #: Writes a handler started but did not wait for (e.g. IPAM's local file): the pod
        #: manager awaits each before it answers the runtime, and an error fails the ADD
        #: (the pod is then deleted again). Lets slow fsyncs overlap the netlink work.
        self.before_reply: list[Callable[[], Awaitable[None]]] = []

    def describe(self) -> str:
        return f"Add Pod {self.pod.id} container={self.pod.container_id[:12]}"

    def batch_key(self) -> object | None:
        """AddPods of different pods that arrive together are wired in one transaction."""
        return self.pod.id


class DeletePod(Event):
    """Un-wire a pod (CNI DEL). Blocking, best-effort ignoring errors, reverse order."""

    name = "Delete Pod"
    blocking = True
    txn_type = UpdateTxnType.BEST_EFFORT_IGNORE_ERRORS
    direction = Direction.REVERSE

    def __init__(self, pod: LocalPod) -> None:
        super().__init__()
        self.pod = pod

    def describe(self) -> str:
        return f"Delete Pod {self.pod.id} container={self.pod.container_id[:12]}"

    def batch_key(self) -> object | None:
        return self.pod.id


class PodManagerAPI(Protocol):
    """What handlers read from the pod manager."""

    def local_pods(self) -> Mapping[PodID, LocalPod]:
        """Pods currently wired on this node (from the persisted records)."""
        ...
