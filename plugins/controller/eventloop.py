"""The event loop: bounded queues, one processing task, startup hold, healing, history, health.

Producers push events (:meth:`EventLoop.push`); an event pushed from inside the loop (by a
handler) is a *follow-up*: it goes to a priority queue served before the main queue. Both
queues are bounded and a full queue raises :class:`EventQueueFullError` at once. Events other
than resyncs that arrive before the first resync are held and replayed right after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from plugins.controller.api import Event, EventHandler, EventMethod, UpdateTxnType
from plugins.controller.batch import MAX_BATCH, batchable, process_batch
from plugins.controller.config import ControllerConfig
from plugins.controller.errors import (
    DeadlockError,
    EventLoopAbortingError,
    EventLoopStoppedError,
    EventQueueFullError,
)
from plugins.controller.events import HealingKind, HealingResync, VerificationResync
from plugins.controller.history import EventHistory, EventRecord
from plugins.controller.kubestate import KubeStateCache
from plugins.controller.metrics import ControllerMetrics
from plugins.controller.processing import EventProcessor, Outcome
from plugins.kvscheduler.api import KVSchedulerAPI

HealthReporter = Callable[[bool, str], None]
_TRIM_PERIOD_S = 60.0


class EventLoop:
    """Contiv's event loop over a :class:`KVSchedulerAPI` and handlers in declared order."""

    def __init__(
        self,
        scheduler: KVSchedulerAPI,
        handlers: Sequence[EventHandler],
        config: ControllerConfig | None = None,
        *,
        metrics: ControllerMetrics | None = None,
        report_health: HealthReporter | None = None,
        log: logging.Logger | None = None,
        kube_state: KubeStateCache | None = None,
    ) -> None:
        self.config = config or ControllerConfig()
        self.processor = EventProcessor(scheduler, handlers, kube_state)
        self.metrics = metrics or ControllerMetrics()
        self.history = EventHistory(
            self.config.event_history_age_limit_s, self.config.permanently_recorded_init_period_s,
            max_records=self.config.event_history_max_records,
            permanent_max=self.config.event_history_permanent_max,
        )
        self.log = log or logging.getLogger("contiv.controller")
        self._report_health = report_health
        self._events: deque[Event] = deque()
        self._follow_ups: deque[tuple[Event, int]] = deque()
        self._held: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        #: Set whenever events leave the main queue (see :meth:`wait_for_room`).
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._current_seq: int | None = None
        self._current_event: Event | None = None
        self._current_batch: list[Event] = []
        self._started = False  # the first resync was processed
        self._startup_missed = False
        self._aborting: str | None = None
        self._healing_scheduled = False
        self._healthy: tuple[bool, str] | None = None
        self._last_trim = time.monotonic()

    # -- state -----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the first resync was processed."""
        return self._started

    @property
    def ready(self) -> bool:
        return self._healthy is not None and self._healthy[0]

    @property
    def healing_scheduled(self) -> bool:
        return self._healing_scheduled

    def queue_depth(self) -> int:
        return len(self._events) + len(self._held)

    def _set_health(self, ok: bool, detail: str, *, quiet: bool = False) -> None:
        if self._healthy == (ok, detail):
            return
        self._healthy = (ok, detail)
        level = logging.INFO if ok or quiet else logging.ERROR
        self.log.log(level, "controller %s: %s", "ready" if ok else "NOT READY", detail)
        if self._report_health is not None:
            self._report_health(ok, detail)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start processing (call from a running asyncio loop)."""
        if self._task is not None:
            return
        self._set_health(False, "waiting for the first resync", quiet=True)
        self._task = asyncio.create_task(self._run(), name="controller-event-loop")
        self._spawn(self._startup_deadline())
        if self.config.enable_periodic_healing:
            self._spawn(self._periodic_healing())

    async def stop(self) -> None:
        """Stop processing; queued blocking events fail with :class:`EventLoopStoppedError`."""
        tasks = [t for t in (self._task, *self._timers) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._timers.clear()
        stopped = EventLoopStoppedError("the controller stopped before processing the event")
        interrupted = [self._current_event] if self._current_event is not None else []
        interrupted += self._current_batch
        self._current_batch = []
        self._current_event = None
        for event in (*interrupted, *self._held, *self._events, *(e for e, _ in self._follow_ups)):
            event.done(stopped)
        self._held.clear()
        self._events.clear()
        self._follow_ups.clear()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # -- producers -------------------------------------------------------------------------

    def push(self, event: Event) -> None:
        """Queue ``event`` without waiting; from inside the loop it becomes a follow-up.

        Raises :class:`EventQueueFullError` when the queue is full and :class:`DeadlockError`
        for a blocking event pushed from inside the loop.
        """
        if self._task is not None and asyncio.current_task() is self._task:
            if event.blocking:
                raise DeadlockError(f"blocking event {event.name!r} pushed from inside the event loop")
            if len(self._follow_ups) >= self.config.follow_up_queue_size:
                self.metrics.rejected.inc()
                raise EventQueueFullError(f"follow-up queue full, event {event.name!r} rejected")
            self._follow_ups.append((event, self._current_seq if self._current_seq is not None else -1))
        else:
            # Held updates count against the capacity, but never keep the resync they wait for out.
            queued = self.queue_depth() if event.method is EventMethod.UPDATE else len(self._events)
            if queued >= self.config.event_queue_size:
                self.metrics.rejected.inc()
                raise EventQueueFullError(
                    f"event queue full ({self.config.event_queue_size}), event {event.name!r} rejected"
                )
            self._events.append(event)
            self.metrics.queue_depth.set(len(self._events))
        self._wakeup.set()

    async def wait_for_room(self, resync: bool = False) -> None:
        """Return once the main queue can take one more update (``resync``: one more resync) event,
        at once when it can or when the loop is not running (:meth:`push` then says why).

        For producers that can wait instead of losing an event to a full queue: the dbwatcher
        waits here before each change, so a burst of changes (thousands of Services created at
        once) slows its etcd watch down instead of overflowing the queue into full resyncs.
        """
        # As push() counts: held updates wait for a resync and must never keep it out.
        while (len(self._events) if resync else self.queue_depth()) >= self.config.event_queue_size:
            if self._task is None or self._task.done():
                return
            self._room.clear()
            await self._room.wait()

    # -- the loop --------------------------------------------------------------------------

    def _next(self) -> tuple[Event, int | None] | None:
        if self._follow_ups:
            return self._follow_ups.popleft()
        if self._started and self._held:
            self._room.set()  # an event left the queue: a waiting producer may go on
            return self._held.popleft(), None
        while self._events:
            event = self._events.popleft()
            self._room.set()
            if self._started or event.method is not EventMethod.UPDATE:
                return event, None
            if self._startup_missed:
                event.done(EventLoopAbortingError("no startup resync within the deadline"))
                continue
            self._held.append(event)
        return None

    async def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            event, follow_up_of = item
            batch = self._batch_after(event) if follow_up_of is None else []
            if batch:
                await self._handle_batch([event, *batch])
                continue
            try:
                await self._handle(event, follow_up_of)
            except Exception as exc:
                self.log.exception("controller failed processing %s", event.name)
                event.done(exc)

    def _batch_after(self, event: Event) -> list[Event]:
        """Queued events that may be processed together with ``event`` (see ``batch.py``)."""
        if not self._started or self._aborting is not None or not self._events:
            return []
        if not batchable(self.processor, event):
            return []
        keys = {event.batch_key()}
        taken: list[Event] = []
        while self._events and len(taken) + 1 < MAX_BATCH:
            nxt = self._events[0]
            key = nxt.batch_key()
            if type(nxt) is not type(event) or key in keys or not batchable(self.processor, nxt):
                break
            keys.add(key)
            taken.append(self._events.popleft())
            self._room.set()
        return taken

    async def _handle_batch(self, events: list[Event]) -> None:
        pairs = []
        for event in events:
            pairs.append((event, self._seq))
            self._seq += 1
        self._current_batch = events
        try:
            outcomes = await process_batch(self.processor, pairs)
        except Exception as exc:
            self.log.exception("controller failed processing a batch of %s", events[0].name)
            for event in events:
                event.done(exc)
            return
        finally:
            self._current_batch = []
        for event, outcome in zip(events, outcomes, strict=True):
            self._after(event, outcome)

    async def _handle(self, event: Event, follow_up_of: int | None) -> None:
        seq = self._seq
        self._seq += 1
        if self._aborting is not None:
            event.done(EventLoopAbortingError(self._aborting))
            return
        self._current_seq = seq
        self._current_event = event
        try:
            outcome = await self.processor.process(event, seq, follow_up_of)
        finally:
            self._current_seq = None
            self._current_event = None
        self._after(event, outcome)

    def _after(self, event: Event, outcome: Outcome) -> None:
        record = outcome.record
        is_resync = event.method is not EventMethod.UPDATE
        failed = outcome.error is not None
        if is_resync and event.method is not EventMethod.DOWNSTREAM_RESYNC and not self._started:
            self._started = True
            self._startup_missed = False
        healing = self.processor.is_after_error_healing(event)
        if healing:
            self._healing_scheduled = False
        if isinstance(event, HealingResync):
            self.metrics.healing.labels(event.kind.value, "failed" if failed else "ok").inc()
        if outcome.fatal:
            self._aborting = f"fatal error in event #{record.seq}: {record.error}"
            self._set_health(False, self._aborting)
        elif healing and failed:
            self._set_health(False, f"healing resync #{record.seq} failed: {record.error}")
        elif outcome.needs_healing:
            record.healing_scheduled = self._schedule_healing(record)
        elif (
            is_resync
            and not failed
            and event.method is not EventMethod.DOWNSTREAM_RESYNC
            and not isinstance(event, VerificationResync)
        ):
            self._set_health(True, f"resync #{record.seq} succeeded")
        if (
            self.config.enable_verification
            and not failed
            and self._aborting is None
            and not isinstance(event, VerificationResync)
            and event.method is not EventMethod.DOWNSTREAM_RESYNC
            and len(self._follow_ups) < self.config.follow_up_queue_size
        ):
            self._follow_ups.append((VerificationResync(), record.seq))
        self._finish(event, outcome)

    def _finish(self, event: Event, outcome: Outcome) -> None:
        record = outcome.record
        self.metrics.events.labels(event.name, event.method.value).inc()
        self.metrics.duration.labels(event.method.value).observe(record.duration_s)
        self.metrics.queue_depth.set(len(self._events))
        if outcome.error is not None:
            self.metrics.failures.labels(event.name).inc()
        if self.config.record_event_history:
            self.history.append(record)
            now = time.monotonic()
            if now - self._last_trim >= _TRIM_PERIOD_S:
                self._last_trim = now
                self.history.trim()
        self._log_block(record)
        ignore = (
            event.method is EventMethod.UPDATE
            and event.txn_type is UpdateTxnType.BEST_EFFORT_IGNORE_ERRORS
        )
        event.done(None if ignore else outcome.error)

    def _log_block(self, record: EventRecord) -> None:
        level = logging.WARNING if record.error else logging.INFO
        if self.log.isEnabledFor(level):
            self.log.log(level, "%s", record.log_block())

    # -- healing and timers ----------------------------------------------------------------

    def _schedule_healing(self, record: EventRecord) -> bool:
        if self._healing_scheduled or self._aborting is not None:
            return False
        self._healing_scheduled = True
        self._spawn(self._push_later(self.config.delay_after_error_healing_s, record))
        return True

    async def _push_later(self, delay_s: float, record: EventRecord) -> None:
        await asyncio.sleep(delay_s)
        event = HealingResync(HealingKind.AFTER_ERROR, f"event #{record.seq}: {record.error}")
        while True:
            try:
                self.push(event)
                return
            except EventQueueFullError:
                await asyncio.sleep(0.1)

    async def _startup_deadline(self) -> None:
        await asyncio.sleep(self.config.startup_resync_deadline_s)
        if self._started:
            return
        self._startup_missed = True
        self._set_health(
            False, f"no resync within the startup deadline ({self.config.startup_resync_deadline_s} s)"
        )
        error = EventLoopAbortingError("no startup resync within the deadline")
        while self._held:
            self._held.popleft().done(error)
        self._wakeup.set()

    async def _periodic_healing(self) -> None:
        while True:
            await asyncio.sleep(self.config.periodic_healing_interval_s)
            if not self._started or self._aborting is not None:
                continue
            try:
                self.push(HealingResync(HealingKind.PERIODIC))
            except EventQueueFullError:
                self.log.warning("periodic healing skipped: event queue full")

    def history_records(self, since_seq: int = 0, limit: int | None = None) -> list[EventRecord]:
        self.history.trim()
        return self.history.records(since_seq, limit)

    def describe_handlers(self) -> dict[str, Any]:
        """Every handler's ``describe_internal_state`` (handlers describing nothing are left out)."""
        return self.processor.describe()
