"""Several independent update events as one batch: one handler pass each, one commit.

A node that boots or a deployment that scales sends many CNI ADDs at once; one event at a time,
each waits for every transaction before it. Queued events of one class whose ``batch_key``
differ (AddPods of different pods) are taken together when every handler that handles them
``supports_batching``: the handlers run for each event in order (each into a transaction of its
own), the successful ones are committed as one scheduler transaction, and each event gets its
own outcome and history record. The guarantees hold:

* one transaction per event: a batch is one event's worth of processing for each member and
  one commit; when the batched commit fails, every member is reverted (scheduler and
  handlers) and processed again alone, with its own transaction (so a bad pod fails alone);
* revert on failure: a member whose handler fails is reverted at once and leaves the batch;
* same-pod order: two events with the same key are never in one batch (the batch is a prefix
  of the queue that stops at the first repeated key or other kind of event);
* resyncs are never batched and never overlap a batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import BaseModel

from plugins.controller.api import Event, EventHandler, EventMethod, UpdateTxnType
from plugins.controller.errors import TransactionFailedError
from plugins.controller.events import KubeStateChange
from plugins.controller.history import EventRecord, HandlerRecord
from plugins.controller.processing import EventProcessor, Outcome, summarize_txn
from plugins.controller.txn import EventTransaction

#: At most this many events in one batch.
MAX_BATCH = 32


def _takes_batches(handler: EventHandler, event: Event) -> bool:
    if isinstance(event, KubeStateChange):
        return event.resource in handler.batched_resources
    return handler.supports_batching


def batchable(processor: EventProcessor, event: Event) -> bool:
    """Whether ``event`` may join a batch at all: an update with a batch key whose every
    handler takes it in batches (``supports_batching``; for a reflected resource's change,
    ``batched_resources``)."""
    if event.method is not EventMethod.UPDATE or event.batch_key() is None:
        return False
    return all(_takes_batches(handler, event) for handler in processor.handlers if handler.handles_event(event))


def _record(event: Event, seq: int) -> EventRecord:
    return EventRecord(
        seq=seq, name=event.name, description=event.describe(), method=event.method.value,
        txn_type=event.txn_type.value, direction=event.direction.value, follow_up_of=None,
        started=time.time(),
    )


class _Member:
    __slots__ = ("changes", "event", "outcome", "ran", "txn")

    def __init__(self, event: Event, seq: int) -> None:
        self.event = event
        self.outcome = Outcome(_record(event, seq))
        self.txn = EventTransaction()
        self.ran: list[tuple[EventHandler, HandlerRecord]] = []
        self.changes: list[str] = []


async def process_batch(
    processor: EventProcessor, events: Sequence[tuple[Event, int]]
) -> list[Outcome]:
    """Process ``(event, seq)`` pairs (same class, distinct batch keys) as one batch."""
    first = events[0][0]
    revert_mode = first.txn_type is UpdateTxnType.REVERT_ON_FAILURE
    ignore_errors = first.txn_type is UpdateTxnType.BEST_EFFORT_IGNORE_ERRORS
    members = [_Member(event, seq) for event, seq in events]
    committing: list[_Member] = []
    for m in members:
        m.ran, stop, m.changes = processor._run_handlers(
            m.event, m.txn, m.outcome, False, ignore_errors, revert_mode
        )
        if m.outcome.error is not None and revert_mode:
            processor._revert(m.event, m.ran, m.outcome)
        elif not stop:
            committing.append(m)
    if committing:
        merged = EventTransaction()
        handler_values: dict[str, BaseModel | None] = {}
        for m in committing:
            for key, value in m.txn.values().items():
                handler_values[key] = value
                if value is None:
                    merged.delete(key)
                else:
                    merged.put(key, value)
        processor._merge_external(first, merged, False)
        seqs = ", ".join(f"#{m.outcome.record.seq}" for m in committing)
        description = f"batch of {len(committing)} {first.name} events {seqs}"
        result = None
        error: BaseException | None = None
        if len(merged):
            try:
                result = await processor.scheduler.commit(
                    merged.values(), revert_on_failure=revert_mode, description=description
                )
            except Exception as exc:  # noqa: BLE001 - a scheduler crash is a transaction error
                error = exc
        failed = error is not None or (result is not None and not result.ok)
        if failed and revert_mode:
            # The scheduler reverted the batch: undo every member, then give each its own
            # event and transaction (a bad pod then fails alone).
            for m in reversed(committing):
                processor._revert(m.event, m.ran, m.outcome)
            for m in committing:
                m.outcome = await processor.process(m.event, m.outcome.record.seq, None)
                m.outcome.record.description += " (alone, after a failed batch)"
        else:
            summary = summarize_txn(result) if result is not None else None
            for m in committing:
                m.outcome.record.txn = summary
                m.outcome.record.description += f" (in a {description})"
                if failed:
                    m.outcome.record.txn_error = str(error or dict(result.errors if result else {}))
                    if not ignore_errors:
                        m.outcome.needs_healing = True
                        m.outcome.error = m.outcome.error or error or (
                            TransactionFailedError(result) if result is not None else None)
            for key, value in handler_values.items():
                if value is None:
                    processor.internal_config.pop(key, None)
                else:
                    processor.internal_config[key] = value
    for m in members:
        if m.outcome.error is not None and not m.outcome.record.error:
            m.outcome.record.error = f"{type(m.outcome.error).__name__}: {m.outcome.error}"
        m.outcome.record.finished = time.time()
    return [m.outcome for m in members]
