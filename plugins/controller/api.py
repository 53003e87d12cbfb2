"""The controller's public contract: events, transactions, :class:`EventHandler`, :class:`ControllerAPI`.

Contiv's event loop (reference/contiv.md section 4): every change reaching the agent is an
:class:`Event`. The controller processes one event at a time; for each it asks every handler
(in the order the app declares, reversed for reverse events) whether it handles the event, lets
each contribute desired dataplane values to one shared transaction, and commits that transaction
to the KV scheduler.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel


class EventMethod(enum.Enum):
    FULL_RESYNC = "full-resync"
    UPSTREAM_RESYNC = "upstream-resync"
    DOWNSTREAM_RESYNC = "downstream-resync"
    UPDATE = "update"


class UpdateTxnType(enum.Enum):
    #: Errors are reported and trigger a healing resync; the rest of the transaction still runs.
    BEST_EFFORT = "best-effort"
    #: Errors are logged only; no healing.
    BEST_EFFORT_IGNORE_ERRORS = "best-effort-ignore-errors"
    #: The first error reverts the transaction and calls ``revert`` on handlers already run.
    REVERT_ON_FAILURE = "revert-on-failure"


class Direction(enum.Enum):
    FORWARD = "forward"
    REVERSE = "reverse"


class ControllerError(Exception):
    """Base of errors a handler raises to steer the controller."""


class FatalError(ControllerError):
    """Unrecoverable: the agent becomes not ready."""


class AbortEventError(ControllerError):
    """Stop processing this event now (skip the remaining handlers) and heal."""


class Event:
    """Base of every event. Subclasses set ``name`` and override what differs.

    A *blocking* event carries a future: the producer awaits :meth:`wait` and gets the outcome
    (None, or the error that failed the event).
    """

    name: str = "event"
    method: EventMethod = EventMethod.UPDATE
    txn_type: UpdateTxnType = UpdateTxnType.BEST_EFFORT
    direction: Direction = Direction.FORWARD
    blocking: bool = False

    def batch_key(self) -> object | None:
        """What this event must be ordered against, when it may join a batch (else None).

        Queued update events of one class with different batch keys (e.g. AddPods of different
        pods) may be processed as one batch, one transaction, when every handler that handles
        them sets ``supports_batching`` (see ``docs/controller.md``). Two events with the same key
        are never in one batch, so their order holds.
        """
        return None

    def __init__(self) -> None:
        self._done: asyncio.Future[None] | None = None
        if self.blocking:
            self._done = asyncio.get_running_loop().create_future()

    def describe(self) -> str:
        """One line for logs and the event history."""
        return self.name

    def done(self, error: BaseException | None) -> None:
        """Called by the controller when processing finished."""
        if self._done is not None and not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)

    async def wait(self) -> None:
        """Await the outcome of a blocking event (raises the error that failed it)."""
        if self._done is None:
            raise RuntimeError(f"event {self.name} is not blocking")
        await self._done


class ResyncEventBase(Event):
    """An event whose method is a resync; carries the full Kubernetes state when it is a DB one."""

    method = EventMethod.FULL_RESYNC


class Transaction(Protocol):
    """The desired-state transaction handlers fill for one event."""

    def put(self, key: str, value: BaseModel) -> None:
        """Desire ``value`` under ``key`` (replaces what an earlier handler put there)."""
        ...

    def delete(self, key: str) -> None:
        """Desire that ``key`` does not exist."""
        ...

    def get(self, key: str) -> BaseModel | None:
        """What the transaction desires under ``key`` so far (for amending), or None."""
        ...

    def values(self) -> Mapping[str, BaseModel | None]:
        """Everything put or deleted so far."""
        ...


class KubeStateReader(Protocol):
    """Read-only view of the reflected Kubernetes state (the controller's cache)."""

    def list(self, resource: str) -> Mapping[str, Any]:
        """Every object of ``resource`` (e.g. ``pod``) keyed by its KSR key suffix."""
        ...

    def get(self, resource: str, name: str) -> Any | None:
        """One object, by the key suffix used in :meth:`list`."""
        ...


class EventHandler(abc.ABC):
    """The one way to be an event handler: subclass this (next to :class:`core.plugin.Plugin`).

    The controller adopts every enabled plugin of the app that is an ``EventHandler`` when the
    agent starts (``contiv_agent_starting``); ``controller.handler_order`` in the YAML fixes the
    calling order (reversed for reverse-direction events). It calls the methods one handler at a
    time, never concurrently, from its single event-loop task: handlers need no locks and must
    not block (they only compute desired state). ``handles_event`` is required, as is at least
    one of ``resync`` and ``update``; the others default to doing nothing.
    """

    #: True when ``update`` may be called for several batchable events (``Event.batch_key``)
    #: before their one commit, and ``revert`` then undoes exactly the given event's change
    #: (in any order). A handler that leaves it False never sees a batch.
    supports_batching: bool = False

    #: Reflected resources (``KubeStateChange.resource``) whose changes this handler takes in
    #: batches: ``update`` may run for several changes before their one commit, and ``revert``
    #: undoes exactly the given change. A run of queued changes is then one transaction (a burst
    #: of thousands of Services is committed 32 at a time, as kube-proxy folds a second's changes
    #: into one sync). A resource some handler of it does not list goes one change at a time.
    batched_resources: ClassVar[frozenset[str]] = frozenset()

    #: Handlers (plugin names) this one must come after / before, e.g. ``("ipnet",)`` for one
    #: that amends pod wiring, as pluggy's ordering marks and Ligato's dependencies do. Names
    #: not enabled are ignored; ``controller.handler_order`` overrides for the handlers it lists.
    handler_after: ClassVar[tuple[str, ...]] = ()
    handler_before: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def handles_event(self, event: Event) -> bool:
        """Return True when this handler wants ``event`` (for ``resync`` or ``update``)."""

    def resync(
        self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction
    ) -> None:
        """Put this handler's complete desired state into ``txn``.

        Called for full and upstream resync events (downstream resyncs call no handler).
        ``resync_count`` is 1 for the first resync after start. Values the handler does not put
        are removed. Raise ``FatalError`` or ``AbortEventError`` to steer the controller; other
        exceptions are reported and heal with a later resync.
        """
        return None

    def update(self, event: Event, txn: Transaction) -> str | None:
        """Apply ``event`` by putting and deleting values in ``txn``.

        Return a short description of the change (shown in the event history) or None when
        nothing changed. May read what earlier handlers put with ``txn.get``.
        """
        return None

    def revert(self, event: Event) -> None:
        """Undo the internal-state change ``update`` made for a failed revert-on-failure event.

        Called in reverse order on handlers whose ``update`` already ran. Dataplane values are
        reverted by the scheduler; only the handler's own bookkeeping needs undoing here.
        """
        return None

    def describe_internal_state(self) -> dict[str, object] | None:
        """A JSON-serialisable summary of the handler's internal state, or None (left out).

        Served by ``GET /controller/internal-state``; a verification resync checks that it is
        the same before and after. Called from the event loop.
        """
        return None


class ControllerAPI(Protocol):
    """The controller as other plugins use it (implemented by ``ControllerPlugin``)."""

    def register_resource(self, keyword: str, key_prefix: str, model: type[BaseModel]) -> None:
        """Reflect ``/vnf-agent/contiv-ksr/<key_prefix>...`` as resource ``keyword`` of ``model``.

        Call from ``init``; registering the same keyword, prefix and model twice is a no-op.
        """
        ...

    async def push_event(self, event: Event) -> None:
        """Queue ``event`` (await ``event.wait()`` for a blocking one's outcome); raises
        ``EventQueueFullError`` when the queue is full."""
        ...

    def push_follow_up(self, event: Event) -> None:
        """From a handler (inside the loop): queue a follow-up served before queued events."""
        ...

    @property
    def kube_state(self) -> KubeStateReader:
        """The cached Kubernetes state (read it from handlers, inside the loop)."""
        ...
