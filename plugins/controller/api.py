"""The controller's public contract: events, transactions handed to handlers, the handler hooks.

Contiv's event loop (reference/contiv.md section 4): every change reaching the agent is an
:class:`Event`. The controller processes one event at a time; for each it asks every handler
(in the order the app declares, reversed for reverse events) whether it handles the event, lets
each contribute desired dataplane values to one shared transaction, and commits that transaction
to the KV scheduler.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from typing import Any, Protocol

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
