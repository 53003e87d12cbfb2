"""The KV scheduler engine: transactions one at a time, resyncs, retries, history.

Usable standalone (no plugin machinery)::

    scheduler = KVScheduler(verify=True)
    scheduler.register_descriptor(MyDescriptor())
    result = await scheduler.commit({key: value})
    ...
    await scheduler.close()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from core import tuning
from plugins.kvscheduler.api import (
    Descriptor,
    Origin,
    ResyncMode,
    RetrievedValue,
    SchedulerError,
    TxnKind,
    TxnResult,
    ValueState,
    ValueStatus,
)
from plugins.kvscheduler.engine import AbortTransaction, Executor, TxnContext
from plugins.kvscheduler.graph import Graph, Node
from plugins.kvscheduler.history import TxnHistory, TxnRecord
from plugins.kvscheduler.refresh import refresh, retrieve_all, verify
from plugins.kvscheduler.registry import DescriptorRegistry

log = logging.getLogger("contiv.kvscheduler")


TxnListener = Callable[[TxnResult], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of retriable failures: first after ``period_s``, then ``backoff`` times longer."""

    period_s: float = 1.0
    max_attempts: int = 3
    backoff: float = 2.0

    def __post_init__(self) -> None:
        if self.period_s < 0:
            raise ValueError(f"retry period must be >= 0, got {self.period_s}")
        if self.max_attempts < 0:
            raise ValueError(f"retry max_attempts must be >= 0, got {self.max_attempts}")
        if self.backoff < 1:
            raise ValueError(f"retry backoff must be >= 1, got {self.backoff}")

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based)."""
        return self.period_s * self.backoff ** (attempt - 1)


class KVScheduler:
    """Reconciles desired values with the dataplane through registered descriptors.

    Implements :class:`plugins.kvscheduler.api.KVSchedulerAPI`. One transaction runs at a
    time (an asyncio lock, FIFO); retries run as their own transactions after a back-off.
    """

    def __init__(
        self,
        *,
        verify: bool = False,
        retry: RetryPolicy | None = None,
        history_size: int = 200,
        history_age_s: float = 86400.0,
        record_history: bool = True,
    ) -> None:
        self.verify = verify
        self.retry = retry if retry is not None else RetryPolicy()
        self.record_history = record_history
        self.registry = DescriptorRegistry()
        self.graph = Graph()
        self.history = TxnHistory(history_size, history_age_s)
        self._desired: dict[str, BaseModel] = {}
        self._lock = asyncio.Lock()
        self._seq = 0
        self._closed = False
        self._retry_tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[TxnListener] = []

    # ---- KVSchedulerAPI -------------------------------------------------------------------

    def register_descriptor(self, descriptor: Descriptor[Any]) -> None:
        """Add a value type. Names and key prefixes must be unique."""
        self.registry.register(descriptor)
        # Values committed before their descriptor (UNIMPLEMENTED) are checked now and applied
        # by the next resync or commit of their key.
        ex = Executor(self.graph, self.registry, TxnContext(self._seq, TxnKind.NB, 0))
        for node in list(self.graph):
            if node.descriptor is None and node.key.startswith(descriptor.key_prefix):
                node.descriptor = self.registry.for_key(node.key)
                if node.desired is not None:
                    ex.set_desired(node, node.desired, derived=node.base is not None)

    def descriptors(self) -> list[Descriptor[Any]]:
        return list(self.registry)

    async def commit(
        self,
        changes: Mapping[str, BaseModel | None],
        *,
        resync: ResyncMode | None = None,
        revert_on_failure: bool = False,
        description: str = "",
    ) -> TxnResult:
        """Run one transaction and wait for it (see :class:`KVSchedulerAPI`)."""
        if self._closed:
            raise SchedulerError("the scheduler is closed")
        if revert_on_failure and resync is not None:
            raise SchedulerError("revert_on_failure cannot be combined with a resync")
        if resync is ResyncMode.DOWNSTREAM and changes:
            raise SchedulerError("a downstream resync takes no changes (pass {})")
        for key, value in changes.items():
            if not isinstance(key, str) or not key:
                raise SchedulerError(f"transaction key {key!r} is not a non-empty string")
            if value is not None and not isinstance(value, BaseModel):
                raise SchedulerError(f"value of {key} is a {type(value).__name__}, not a pydantic model")
        kind = TxnKind.NB if resync is None else TxnKind.RESYNC
        async with self._lock:
            if self._closed:
                raise SchedulerError("the scheduler is closed")
            with tuning.gc_paused():
                return await self._run(kind, dict(changes), resync, revert_on_failure, description)

    def value_status(self, key: str) -> ValueStatus:
        node = self.graph.get(key)
        if node is None:
            desc = self.registry.for_key(key)
            return ValueStatus(key, ValueState.NONEXISTENT, desc.name if desc else None)
        return self.graph.status(node)

    def desired(self) -> Mapping[str, BaseModel]:
        return dict(self._desired)

    def metadata(self, descriptor: str) -> Mapping[str, Any]:
        return self.registry.metadata(descriptor)

    # ---- observability --------------------------------------------------------------------

    def add_listener(self, listener: TxnListener) -> None:
        """Call ``listener(result)`` after every transaction (metrics, logging)."""
        self._listeners.append(listener)

    def statuses(self, key_prefix: str = "", descriptor: str | None = None) -> list[ValueStatus]:
        """Status of every known key under ``key_prefix`` (and of ``descriptor``), by key."""
        return [
            self.graph.status(n)
            for n in sorted(self.graph, key=lambda n: n.key)
            if n.key.startswith(key_prefix) and (descriptor is None or n.descriptor_name == descriptor)
        ]

    def count_by_state(self) -> dict[ValueState, int]:
        """How many known keys are in each state (states with none left out)."""
        return {ValueState(state): n for state, n in self.graph.state_counts.items() if n}

    def applied(self, key_prefix: str = "") -> dict[str, Node]:
        """The scheduler's view of the dataplane: nodes believed to exist, by key."""
        return {n.key: n for n in self.graph if n.applied is not None and n.key.startswith(key_prefix)}

    async def read_back(self, descriptor: str | None = None) -> dict[str, RetrievedValue]:
        """A live ``retrieve`` of one or all descriptors; the graph is not changed."""
        async with self._lock:
            descs = [self.registry.by_name(descriptor)] if descriptor is not None else self.registry.retrieve_order()
            ctx = TxnContext(self._seq, TxnKind.RESYNC, 0)
            found = await retrieve_all(Executor(self.graph, self.registry, ctx), descs)
            if ctx.errors:
                raise SchedulerError("; ".join(f"{k}: {v}" for k, v in ctx.errors.items()))
        return {key: item for items in found.values() for key, item in items.items()}

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until no retry is scheduled (values settled as configured, failed or pending)."""

        async def wait() -> None:
            while self._retry_tasks:
                await asyncio.gather(*list(self._retry_tasks), return_exceptions=True)

        async with asyncio.timeout(timeout):
            await wait()

    async def close(self) -> None:
        """Cancel scheduled retries; later commits raise :class:`SchedulerError`."""
        self._closed = True
        tasks = list(self._retry_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._retry_tasks.clear()

    # ---- transactions ---------------------------------------------------------------------

    async def _run(
        self,
        kind: TxnKind,
        changes: dict[str, BaseModel | None],
        resync: ResyncMode | None,
        revert_on_failure: bool,
        description: str,
        retry_keys: Iterable[str] = (),
    ) -> TxnResult:
        self._seq += 1
        ctx = TxnContext(self._seq, kind, self.retry.max_attempts, revert_on_failure)
        ex = Executor(self.graph, self.registry, ctx)
        started_wall = time.time()
        started = time.perf_counter()
        reverted = False
        if kind is TxnKind.NB:
            previous = {k: self._desired.get(k) for k in changes}
            keys = [k for k, v in changes.items() if ex.set_nb(k, v)]
            self._update_desired(changes)
            try:
                await ex.run(keys)
            except AbortTransaction:
                reverted = True
                await self._revert(ex, previous)
        elif kind is TxnKind.RETRY:
            await ex.run(retry_keys)
        else:
            assert resync is not None
            if resync is not ResyncMode.DOWNSTREAM:
                self._replace_desired(ex, changes)
            if resync is not ResyncMode.UPSTREAM:
                await refresh(ex)
            await ex.run(list(self.graph.nodes), skip_settled=True)
        if self.verify:
            await verify(ex)
        result = TxnResult(
            seq=ctx.seq,
            kind=kind,
            resync=resync,
            description=description,
            operations=ctx.operations,
            errors=ctx.errors,
            reverted=reverted,
        )
        result.values = self._finish(ex)
        result.duration_s = time.perf_counter() - started
        if self.record_history:
            self.history.append(TxnRecord(result, started_wall, changes if kind is TxnKind.NB else {}))
        self._schedule_retries(ctx)
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:
                log.exception("transaction listener failed")
        return result

    def _update_desired(self, changes: Mapping[str, BaseModel | None]) -> None:
        for key, value in changes.items():
            node = self.graph.get(key)
            if value is None or node is None or node.base is not None:
                self._desired.pop(key, None)
            else:
                self._desired[key] = value

    def _replace_desired(self, ex: Executor, changes: Mapping[str, BaseModel | None]) -> None:
        for key in list(self._desired):
            if changes.get(key) is None:
                ex.set_nb(key, None)
        for key, value in changes.items():
            if value is not None:
                ex.set_nb(key, value)
        self._desired = {}
        self._update_desired({k: v for k, v in changes.items() if v is not None})

    async def _revert(self, ex: Executor, previous: Mapping[str, BaseModel | None]) -> None:
        """Undo a revert-on-failure transaction: bring every changed key back as it was."""
        ex.ctx.reverting = True
        keys = [k for k, v in previous.items() if ex.set_nb(k, v, force=True)]
        self._update_desired(previous)
        await ex.run(keys)

    def _finish(self, ex: Executor) -> dict[str, ValueStatus]:
        """Statuses of the touched keys; forget nodes that are neither desired nor applied."""
        graph = self.graph
        values: dict[str, ValueStatus] = {}
        for key in ex.ctx.touched:
            node = graph.get(key)
            if node is None:
                continue
            values[key] = graph.status(node)
            if (
                node.desired is None
                and node.applied is None
                and not node.available
                and node.origin is Origin.FROM_NB
                and not node.derived_keys
            ):
                graph.drop(node)
        return values

    # ---- retries --------------------------------------------------------------------------

    def _schedule_retries(self, ctx: TxnContext) -> None:
        if self._closed or not ctx.retry_keys:
            return
        groups: dict[float, list[tuple[str, int, BaseModel | None]]] = defaultdict(list)
        for key in dict.fromkeys(ctx.retry_keys):
            node = self.graph.get(key)
            if node is not None and node.state is ValueState.RETRYING:
                groups[self.retry.delay(node.attempts)].append((key, node.attempts, node.desired))
        for delay, items in sorted(groups.items()):
            task = asyncio.get_running_loop().create_task(self._retry_later(delay, items))
            self._retry_tasks.add(task)
            task.add_done_callback(self._retry_tasks.discard)

    async def _retry_later(self, delay: float, items: list[tuple[str, int, BaseModel | None]]) -> None:
        await asyncio.sleep(delay)
        async with self._lock:
            if self._closed:
                return
            keys = []
            for key, attempts, desired in items:
                node = self.graph.get(key)
                # Only values unchanged since the failure: a newer desired value or a success
                # makes this retry obsolete.
                if (
                    node is not None
                    and node.state is ValueState.RETRYING
                    and node.attempts == attempts
                    and node.desired is desired
                ):
                    keys.append(key)
            if keys:
                try:
                    with tuning.gc_paused():
                        await self._run(
                            TxnKind.RETRY,
                            {},
                            None,
                            False,
                            f"retry of {len(keys)} value(s) after {delay:g} s",
                            keys,
                        )
                except Exception:
                    log.exception("retry transaction failed")
