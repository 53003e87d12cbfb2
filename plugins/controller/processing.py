"""Processing one event: caches, handlers in order, external config merge, one scheduler commit.

Contiv's ``processEvent`` steps 1-10; queueing, healing, history and health are the event
loop's business (``eventloop.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from core import tuning
from plugins.controller.api import (
    AbortEventError,
    Direction,
    Event,
    EventHandler,
    EventMethod,
    FatalError,
    UpdateTxnType,
)
from plugins.controller.errors import TransactionFailedError
from plugins.controller.events import (
    DBResync,
    ExternalConfigChange,
    HealingKind,
    HealingResync,
    KubeStateChange,
    VerificationResync,
)
from plugins.controller.handlers import check_handlers, handler_name
from plugins.controller.history import EventRecord, HandlerRecord
from plugins.controller.kubestate import KubeStateCache
from plugins.controller.txn import EventTransaction, ExternalConfig
from plugins.kvscheduler.api import KVSchedulerAPI, ResyncMode, TxnResult

#: The source name of external config read by the dbwatcher.
ETCD_SOURCE = "etcd"

_RESYNC_MODES = {
    EventMethod.FULL_RESYNC: ResyncMode.FULL,
    EventMethod.UPSTREAM_RESYNC: ResyncMode.UPSTREAM,
    EventMethod.DOWNSTREAM_RESYNC: ResyncMode.DOWNSTREAM,
}


class VerificationError(RuntimeError):
    """A verification resync found state that a plain resync would change."""


@dataclass(slots=True)
class Outcome:
    """What processing one event produced."""

    record: EventRecord
    #: The first error (handler, transaction); None when everything succeeded.
    error: BaseException | None = None
    fatal: bool = False
    needs_healing: bool = False


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def summarize_txn(result: TxnResult) -> dict[str, Any]:
    """The scheduler transaction as recorded in the event history."""
    return {
        "seq": result.seq,
        "kind": result.kind.value,
        "resync": result.resync.value if result.resync is not None else None,
        "description": result.description,
        "operations": [
            {"key": op.key, "operation": op.operation.value, "error": op.error}
            for op in result.operations
        ],
        "errors": dict(result.errors),
        "reverted": result.reverted,
        "duration_ms": round(result.duration_s * 1000, 3),
    }


class EventProcessor:
    """Holds what survives between events (caches, resync count) and processes one event."""

    def __init__(
        self,
        scheduler: KVSchedulerAPI,
        handlers: Sequence[EventHandler],
        kube_state: KubeStateCache | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.handlers = check_handlers(handlers)
        self._reversed = list(reversed(self.handlers))
        self.kube_state = kube_state if kube_state is not None else KubeStateCache()
        self.external = ExternalConfig()
        #: The last committed desired state of the handlers (before external merge).
        self.internal_config: dict[str, BaseModel] = {}
        self.resync_count = 0

    def _update_caches(self, event: Event) -> bool:
        """Steps 1-2 of Contiv's processing; False when the event changes nothing at all."""
        method = event.method
        if isinstance(event, VerificationResync):
            return True
        if method in (EventMethod.FULL_RESYNC, EventMethod.UPSTREAM_RESYNC):
            self.resync_count += 1
        if isinstance(event, DBResync):
            self.kube_state.replace(event.kube_state)
            self.external.replace(ETCD_SOURCE, event.external_config)
        elif isinstance(event, KubeStateChange):
            if event.prev_value is None:
                event.prev_value = self.kube_state.get(event.resource, event.key)
            if event.prev_value is None and event.new_value is None:
                return False
            self.kube_state.apply(event.resource, event.key, event.new_value)
        elif isinstance(event, ExternalConfigChange):
            self.external.apply(event.source, event.updated)
        return True

    def _ordered_handlers(self, event: Event) -> list[EventHandler]:
        if event.method is EventMethod.DOWNSTREAM_RESYNC:
            return []
        if event.method is EventMethod.UPDATE and event.direction is Direction.REVERSE:
            return self._reversed
        return self.handlers

    async def process(self, event: Event, seq: int, follow_up_of: int | None) -> Outcome:
        started = time.time()
        changed = self._update_caches(event)
        record = EventRecord(
            seq=seq,
            name=event.name,
            description=event.describe(),
            method=event.method.value,
            txn_type=event.txn_type.value,
            direction=event.direction.value,
            follow_up_of=follow_up_of,
            started=started,
        )
        outcome = Outcome(record)
        if not changed:
            record.description += " (no change: unknown object)"
            record.finished = time.time()
            return outcome
        is_resync = event.method is not EventMethod.UPDATE
        ignore_errors = not is_resync and event.txn_type is UpdateTxnType.BEST_EFFORT_IGNORE_ERRORS
        revert_mode = not is_resync and event.txn_type is UpdateTxnType.REVERT_ON_FAILURE
        txn = EventTransaction()
        before_state = self.describe() if isinstance(event, VerificationResync) else {}
        ran, stop_commit, changes = self._run_handlers(
            event, txn, outcome, is_resync, ignore_errors, revert_mode
        )

        if isinstance(event, VerificationResync):
            self._verify(txn, before_state, outcome)
        elif not stop_commit:
            handler_values = dict(txn.values())
            self._merge_external(event, txn, is_resync)
            if len(txn) or is_resync:
                await self._commit(
                    event, txn, handler_values, is_resync, revert_mode, ignore_errors, changes, outcome
                )

        if revert_mode and outcome.error is not None:
            self._revert(event, ran, outcome)

        if outcome.error is not None:
            record.error = _error_text(outcome.error)
        record.finished = time.time()
        return outcome

    def _run_handlers(
        self, event: Event, txn: EventTransaction, outcome: Outcome, is_resync: bool,
        ignore_errors: bool, revert_mode: bool,
    ) -> tuple[list[tuple[EventHandler, HandlerRecord]], bool, list[str]]:
        """Steps 3-7: every handler in order into ``txn``; (handlers run, stop commit, changes)."""
        # Handlers run synchronously (nothing else runs meanwhile) and a resync builds the whole
        # desired state: automatic collection is paused for that stretch, as for the scheduler's
        # planning (10k services: the processor spent ~40% of its time in the collector).
        with tuning.gc_paused():
            return self._run_handlers_paused(event, txn, outcome, is_resync, ignore_errors, revert_mode)

    def _run_handlers_paused(
        self, event: Event, txn: EventTransaction, outcome: Outcome, is_resync: bool,
        ignore_errors: bool, revert_mode: bool,
    ) -> tuple[list[tuple[EventHandler, HandlerRecord]], bool, list[str]]:
        record = outcome.record
        ran: list[tuple[EventHandler, HandlerRecord]] = []
        stop_commit = False
        changes: list[str] = []
        for handler in self._ordered_handlers(event):
            handler_record: HandlerRecord | None = None
            name = handler_name(handler)
            try:
                if not handler.handles_event(event):
                    continue
                handler_record = HandlerRecord(name)
                record.handlers.append(handler_record)
                ran.append((handler, handler_record))
                if is_resync:
                    handler.resync(event, self.kube_state, self.resync_count, txn)
                else:
                    change = handler.update(event, txn)
                    if change:
                        handler_record.change = str(change)
                        changes.append(f"{name}: {change}")
            except Exception as exc:  # noqa: BLE001 - every handler error is recorded and steered
                text = _error_text(exc)
                if handler_record is None:
                    record.handlers.append(HandlerRecord(name, error=text))
                else:
                    handler_record.error = text
                if outcome.error is None:
                    outcome.error = exc
                if isinstance(exc, FatalError):
                    outcome.fatal = True
                    stop_commit = True
                    break
                if not ignore_errors:
                    outcome.needs_healing = True
                if isinstance(exc, AbortEventError) or revert_mode:
                    stop_commit = True
                    break
        return ran, stop_commit, changes

    @staticmethod
    def _revert(
        event: Event, ran: list[tuple[EventHandler, HandlerRecord]], outcome: Outcome
    ) -> None:
        """Call ``revert`` on the handlers that ran for ``event``, in reverse."""
        for handler, handler_record in reversed(ran):
            try:
                handler.revert(event)
                handler_record.reverted = True
            except Exception as exc:  # noqa: BLE001 - a failed revert heals later
                handler_record.revert_error = _error_text(exc)
                outcome.needs_healing = True

    async def _commit(
        self,
        event: Event,
        txn: EventTransaction,
        handler_values: dict[str, BaseModel | None],
        is_resync: bool,
        revert_mode: bool,
        ignore_errors: bool,
        changes: list[str],
        outcome: Outcome,
    ) -> None:
        description = f"#{outcome.record.seq} {event.describe()}"
        if changes:
            description += " [" + "; ".join(changes) + "]"
        result: TxnResult | None = None
        txn_error: BaseException | None = None
        try:
            if is_resync:
                mode = _RESYNC_MODES[event.method]
                desired = {} if mode is ResyncMode.DOWNSTREAM else txn.desired_state()
                result = await self.scheduler.commit(desired, resync=mode, description=description)
            else:
                result = await self.scheduler.commit(
                    txn.values(), revert_on_failure=revert_mode, description=description
                )
        except Exception as exc:  # noqa: BLE001 - a scheduler crash is a transaction error
            txn_error = exc
        if result is not None:
            outcome.record.txn = summarize_txn(result)
            if not result.ok:
                txn_error = TransactionFailedError(result)
        if txn_error is not None:
            outcome.record.txn_error = _error_text(txn_error)
            only_external = result is not None and set(result.errors) <= self.external.keys()
            if not ignore_errors and not only_external:
                outcome.needs_healing = True
            if outcome.error is None:
                outcome.error = txn_error
        reverted = revert_mode and txn_error is not None
        if is_resync:
            if event.method is not EventMethod.DOWNSTREAM_RESYNC:
                self.internal_config = {k: v for k, v in handler_values.items() if v is not None}
        elif not reverted:
            for key, value in handler_values.items():
                if value is None:
                    self.internal_config.pop(key, None)
                else:
                    self.internal_config[key] = value

    def describe(self) -> dict[str, Any]:
        """Every handler's ``describe_internal_state`` (handlers describing nothing are left out)."""
        described: dict[str, Any] = {}
        for handler in self.handlers:
            state = handler.describe_internal_state()
            if state is not None:
                described[handler_name(handler)] = state
        return described

    def _verify(self, txn: EventTransaction, before: dict[str, Any], outcome: Outcome) -> None:
        """Compare a verification resync with the committed state; differences are errors."""
        problems: list[str] = []
        recomputed = txn.desired_state()
        for key in sorted(set(recomputed) | set(self.internal_config)):
            if recomputed.get(key) != self.internal_config.get(key):
                problems.append(f"desired value {key} differs from the committed one")
        after = self.describe()
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                problems.append(f"handler {name}'s internal state changed")
        if problems and outcome.error is None:
            outcome.error = VerificationError("; ".join(problems))

    def _merge_external(self, event: Event, txn: EventTransaction, is_resync: bool) -> None:
        """Contiv's step 8: external config on top of what the handlers desire."""
        if is_resync:
            if event.method is not EventMethod.DOWNSTREAM_RESYNC:
                self.external.merge_into_resync(txn)
        else:
            changed_external = event.updated if isinstance(event, ExternalConfigChange) else {}
            self.external.merge_into_update(txn, changed_external, self.internal_config)

    def is_after_error_healing(self, event: Event) -> bool:
        return isinstance(event, HealingResync) and event.kind is HealingKind.AFTER_ERROR
