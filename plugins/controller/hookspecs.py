"""Event-handler hooks of the controller (pluggy, marker ``contiv``).

A plugin that wants events implements these as methods marked with ``core.hookspecs.hookimpl``.
The controller calls them on each handler in the order the app declares its handlers (reversed
for reverse-direction events), never concurrently, from its single event-loop task: handlers
need no locks, and must not block (await nothing slow; they only compute desired state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.hookspecs import hookspec

if TYPE_CHECKING:
    from plugins.controller.api import Event, KubeStateReader, Transaction


@hookspec(firstresult=True)
def handles_event(event: Event) -> bool | None:
    """Return True when this handler wants ``event`` (resync or update); False or None skips it."""


@hookspec(firstresult=True)
def resync(event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
    """Put this handler's complete desired state into ``txn``.

    Called for full, upstream and downstream resync events. ``resync_count`` is 1 for the first
    resync after start. Values the handler does not put are removed by a full or upstream resync.
    Raise ``FatalError`` or ``AbortEventError`` to steer the controller; other exceptions are
    reported and heal with a later resync.
    """


@hookspec(firstresult=True)
def update(event: Event, txn: Transaction) -> str | None:
    """Apply ``event`` by putting and deleting values in ``txn``.

    Return a short description of the change (shown in the event history) or None when
    nothing changed. May read what earlier handlers put with ``txn.get``.
    """


@hookspec(firstresult=True)
def revert(event: Event) -> None:
    """Undo the internal-state change made by ``update`` for a failed revert-on-failure event.

    Called in reverse order on handlers whose ``update`` already ran. Dataplane values are
    reverted by the scheduler; only the handler's own bookkeeping needs undoing here.
    """


@hookspec(firstresult=True)
def describe_internal_state() -> dict[str, object] | None:
    """Return a JSON-serialisable summary of the handler's internal state, or None.

    Used for verification: after a resync that should change nothing, the summary must be the
    same as before it. Served by ``GET /controller/internal-state``. Called from the event loop.
    """
