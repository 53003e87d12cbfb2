"""The controller's own events: database resyncs, Kubernetes state and external config changes, healing.

Other producers define their events next to their interfaces (``AddPod`` in the pod manager,
``NodeUpdate`` in nodesync); these are the ones the controller and its dbwatcher produce.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from pydantic import BaseModel

from plugins.controller.api import (
    Direction,
    Event,
    EventMethod,
    ResyncEventBase,
    UpdateTxnType,
)

#: Kubernetes state as handlers see it: resource keyword -> key suffix -> object.
KubeStateData = Mapping[str, Mapping[str, BaseModel]]


class DBResync(ResyncEventBase):
    """A full snapshot of the watched database: Kubernetes state plus this node's external config.

    ``local`` is True when the snapshot came from the local mirror because etcd was unreachable.
    """

    name = "DB Resync"
    method = EventMethod.FULL_RESYNC

    def __init__(
        self,
        kube_state: KubeStateData,
        external_config: Mapping[str, BaseModel],
        *,
        local: bool = False,
        revision: int = 0,
    ) -> None:
        super().__init__()
        self.kube_state = kube_state
        self.external_config = external_config
        self.local = local
        self.revision = revision

    def describe(self) -> str:
        objects = sum(len(items) for items in self.kube_state.values())
        source = "local mirror" if self.local else f"etcd rev {self.revision}"
        return (
            f"{self.name} from {source}: {objects} k8s objects, "
            f"{len(self.external_config)} external values"
        )


class KubeStateChange(Event):
    """One reflected Kubernetes object was added, changed (both values set) or removed (``new`` None).

    ``key`` is the object's key suffix below its resource prefix (e.g. ``web/namespace/default``
    for a pod), the same key :class:`~plugins.controller.api.KubeStateReader` uses. Removals run
    handlers in reverse order, like Contiv.
    """

    name = "Kubernetes State Change"
    txn_type = UpdateTxnType.BEST_EFFORT

    def __init__(
        self,
        resource: str,
        key: str,
        prev_value: BaseModel | None,
        new_value: BaseModel | None,
        *,
        revision: int = 0,
    ) -> None:
        super().__init__()
        self.resource = resource
        self.key = key
        self.prev_value = prev_value
        self.new_value = new_value
        self.revision = revision
        if new_value is None:
            self.direction = Direction.REVERSE

    def describe(self) -> str:
        change = "add" if self.prev_value is None else "delete" if self.new_value is None else "update"
        return f"{self.name}: {change} {self.resource} {self.key} (rev {self.revision})"

    def batch_key(self) -> object | None:
        """Changes of different objects may share a batch when every handler of their resource
        lists it in ``EventHandler.batched_resources``; two changes of one object never do."""
        return (self.resource, self.key)


class ExternalConfigChange(Event):
    """Dataplane values an operator wrote (or removed: None) outside the agent's own handlers."""

    name = "External Config Change"
    txn_type = UpdateTxnType.BEST_EFFORT

    def __init__(
        self, source: str, updated: Mapping[str, BaseModel | None], *, revision: int = 0
    ) -> None:
        super().__init__()
        self.source = source
        self.updated = dict(updated)
        self.revision = revision

    def describe(self) -> str:
        keys = ", ".join(sorted(self.updated))
        return f"{self.name} from {self.source}: {keys}"


class HealingKind(enum.Enum):
    #: Scheduled after a failed event: a full resync.
    AFTER_ERROR = "after-error"
    #: The optional periodic healing: a downstream resync.
    PERIODIC = "periodic"


class HealingResync(ResyncEventBase):
    """A resync the controller schedules itself to repair the dataplane."""

    name = "Healing Resync"

    def __init__(self, kind: HealingKind, error: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.error = error
        self.method = (
            EventMethod.FULL_RESYNC if kind is HealingKind.AFTER_ERROR else EventMethod.DOWNSTREAM_RESYNC
        )

    def describe(self) -> str:
        suffix = f" after error: {self.error}" if self.error else ""
        return f"{self.name} ({self.kind.value}){suffix}"


class RequestedResync(ResyncEventBase):
    """A full resync asked for by an operator (``POST /controller/resync`` without a dbwatcher)."""

    name = "Requested Resync"
    method = EventMethod.FULL_RESYNC


class Shutdown(Event):
    """Pushed (blocking) when the agent stops, so handlers can put their final changes."""

    name = "Shutdown"
    blocking = True
    txn_type = UpdateTxnType.BEST_EFFORT


class VerificationResync(ResyncEventBase):
    """Debug mode: re-run every handler's resync after an event and check nothing would change.

    Not committed: the controller compares the recomputed desired state with the last committed
    one, and each handler's ``describe_internal_state`` before and after; any difference is an
    error in the event history and the log.
    """

    name = "Verification Resync"
    method = EventMethod.UPSTREAM_RESYNC
