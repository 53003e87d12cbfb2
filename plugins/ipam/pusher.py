"""Ordered, retried propagation of allocation changes to etcd.

Handlers allocate from the controller's event loop, where they must not await; they queue the
change here and return. One task applies the queue in order; an operation that fails is
retried (exponential back-off) before anything behind it runs, so etcd always moves through
the same sequence of states as the local file.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from pydantic import ValidationError

from core.kvdb.api import KVBroker, KVError, encode_model
from plugins.ipam.api import IPAMError
from plugins.ipam.store import ETCD_ALLOCATIONS_PREFIX, PodIPAllocation, allocation_key
from plugins.podmanager.api import PodID


@dataclass(frozen=True, slots=True)
class PutAllocation:
    pod: PodID
    ip: IPv4Address


@dataclass(frozen=True, slots=True)
class DeleteAllocation:
    pod: PodID


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Read etcd, merge what it holds into memory, then make etcd equal to memory."""


#: What a failed push may raise: datastore errors, and local-file errors from a merge.
PUSH_ERRORS: tuple[type[Exception], ...] = (KVError, TimeoutError, OSError, IPAMError)

PushOp = PutAllocation | DeleteAllocation | Reconcile
#: Called with what etcd holds; merges it into the allocator and returns every allocation.
MergeRemote = Callable[[dict[PodID, IPv4Address]], Mapping[PodID, IPv4Address]]


class EtcdAllocationPusher:
    """Applies allocation changes to etcd in order, retrying each until it succeeds."""

    def __init__(
        self,
        broker: KVBroker,
        merge_remote: MergeRemote,
        *,
        retry_initial_s: float,
        retry_max_s: float,
        log: logging.Logger,
    ) -> None:
        self._broker = broker
        self._merge_remote = merge_remote
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._log = log
        self._queue: deque[PushOp] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        #: The last error an operation failed with (empty after a success).
        self.last_error = ""
        self.pushed = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        """Operations not yet applied to etcd."""
        return len(self._queue)

    def enqueue(self, op: PushOp) -> None:
        """Queue ``op`` behind everything queued earlier (never blocks)."""
        self._queue.append(op)
        self._idle.clear()
        self._wakeup.set()

    def start(self) -> None:
        """Start the task that applies the queue."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ipam-etcd-pusher")

    async def run_once(self, op: PushOp) -> None:
        """Apply one operation now (outside the queue); raises when it fails."""
        await self._apply(op)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until the queue is empty; False when ``timeout_s`` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, flush_timeout_s: float) -> None:
        """Give the queue ``flush_timeout_s`` to drain, then stop the task."""
        if self._task is None:
            return
        if not await self.flush(flush_timeout_s):
            self._log.warning("stopping with %d allocation change(s) not yet in etcd", self.pending)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _run(self) -> None:
        delay = self._retry_initial_s
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            op = self._queue[0]
            try:
                await self._apply(op)
            except Exception as exc:  # noqa: BLE001 -- retried until it lands: etcd must follow the file
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                expected = isinstance(exc, PUSH_ERRORS)
                (self._log.warning if expected else self._log.error)(
                    "etcd update %s failed (retry in %.1fs): %s", op, delay, self.last_error
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            self._queue.popleft()
            self.pushed += 1
            self.last_error = ""
            delay = self._retry_initial_s

    async def _apply(self, op: PushOp) -> None:
        if isinstance(op, PutAllocation):
            record = PodIPAllocation(pod_name=op.pod.name, pod_namespace=op.pod.namespace, ip_address=str(op.ip))
            await self._broker.put(allocation_key(op.pod), encode_model(record))
        elif isinstance(op, DeleteAllocation):
            await self._broker.delete(allocation_key(op.pod))
        else:
            await self._reconcile()

    async def _reconcile(self) -> None:
        remote: dict[PodID, IPv4Address] = {}
        remote_keys: dict[PodID, str] = {}
        garbage: list[str] = []
        for kv in await self._broker.list(ETCD_ALLOCATIONS_PREFIX):
            try:
                record = PodIPAllocation.model_validate_json(kv.value)
                ip = IPv4Address(record.ip_address)
            except (ValidationError, ValueError) as exc:
                self._log.error("dropping malformed allocation record %s: %s", kv.key, exc)
                garbage.append(kv.key)
                continue
            if allocation_key(record.pod) != kv.key:
                self._log.error("dropping allocation record %s stored under the wrong key", kv.key)
                garbage.append(kv.key)
                continue
            remote[record.pod] = ip
            remote_keys[record.pod] = kv.key
        desired = dict(self._merge_remote(remote))
        for key in garbage:
            await self._broker.delete(key)
        for pod, ip in sorted(desired.items()):
            if remote.get(pod) != ip:
                await self._apply(PutAllocation(pod, ip))
        for pod, key in remote_keys.items():
            if pod not in desired:
                await self._broker.delete(key)
