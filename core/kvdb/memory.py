"""The in-process backend: etcd's semantics (revisions, history, leases, watches) in a dict.

Used by tests and single-process runs. History is kept up to ``history_limit`` events; a watch
from an older revision gets a :class:`WatchResync`, as it would after an etcd compaction.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence

from core.kvdb.api import (
    CompactedError,
    Compare,
    EventType,
    KeyValue,
    KVBroker,
    KVError,
    Op,
    TxnOp,
    TxnResult,
    WatchEvent,
    WatchItem,
    WatchResync,
)


class MemoryBroker(KVBroker):
    """A complete :class:`KVBroker` in memory; one instance is one "cluster"."""

    def __init__(self, history_limit: int = 100_000) -> None:
        self._data: dict[str, KeyValue] = {}
        self._sorted_keys: list[str] = []
        self._rev = 1
        self._history: deque[WatchEvent] = deque(maxlen=history_limit)
        self._compacted = 1
        self._watchers: set[asyncio.Queue[WatchEvent]] = set()
        self._leases: dict[int, tuple[int, float]] = {}  # id -> (ttl, deadline)
        self._lease_ids = itertools.count(1000)
        self._lease_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- reads

    async def get(self, key: str) -> KeyValue | None:
        self._expire_leases()
        return self._data.get(key)

    async def list(self, prefix: str, keys_only: bool = False) -> list[KeyValue]:
        self._expire_leases()
        start = bisect.bisect_left(self._sorted_keys, prefix)
        out: list[KeyValue] = []
        for key in itertools.islice(self._sorted_keys, start, None):
            if not key.startswith(prefix):
                break
            kv = self._data[key]
            out.append(KeyValue(key, b"", kv.mod_revision, kv.create_revision, kv.lease) if keys_only else kv)
        return out

    async def revision(self) -> int:
        return self._rev

    # ---------------------------------------------------------------- writes

    def _put(self, key: str, value: bytes, lease: int, rev: int) -> None:
        if lease and lease not in self._leases:
            raise KVError(f"lease {lease} not found")
        prev = self._data.get(key)
        if prev is None:
            bisect.insort(self._sorted_keys, key)
        self._data[key] = KeyValue(key, value, rev, prev.create_revision if prev else rev, lease)
        self._emit(WatchEvent(EventType.PUT, key, value, prev.value if prev else None, rev))

    def _delete(self, key: str, prefix: bool, rev: int) -> int:
        keys = [kv.key for kv in self._list_now(key)] if prefix else ([key] if key in self._data else [])
        for k in keys:
            prev = self._data.pop(k)
            del self._sorted_keys[bisect.bisect_left(self._sorted_keys, k)]
            self._emit(WatchEvent(EventType.DELETE, k, None, prev.value, rev))
        return len(keys)

    def _list_now(self, prefix: str) -> builtins.list[KeyValue]:
        start = bisect.bisect_left(self._sorted_keys, prefix)
        out: builtins.list[KeyValue] = []
        for key in itertools.islice(self._sorted_keys, start, None):
            if not key.startswith(prefix):
                break
            out.append(self._data[key])
        return out

    def _emit(self, event: WatchEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].revision + 1
        self._history.append(event)
        for queue in self._watchers:
            queue.put_nowait(event)

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        self._expire_leases()
        self._rev += 1
        self._put(key, value, lease, self._rev)
        return self._rev

    async def delete(self, key: str, prefix: bool = False) -> int:
        self._expire_leases()
        if not (self._list_now(key) if prefix else key in self._data):
            return 0
        self._rev += 1
        return self._delete(key, prefix, self._rev)

    async def put_if_absent(self, key: str, value: bytes, lease: int = 0) -> bool:
        self._expire_leases()
        if key in self._data:
            return False
        self._rev += 1
        self._put(key, value, lease, self._rev)
        return True

    async def compare_and_put(
        self, key: str, value: bytes, expected_mod_revision: int, lease: int = 0
    ) -> bool:
        self._expire_leases()
        current = self._data.get(key)
        if (current.mod_revision if current else 0) != expected_mod_revision:
            return False
        self._rev += 1
        self._put(key, value, lease, self._rev)
        return True

    def _holds(self, cmp: Compare) -> bool:
        kv = self._data.get(cmp.key)
        if cmp.target == "exists":
            return (kv is not None) == bool(cmp.expected)
        if cmp.target == "value":
            return kv is not None and kv.value == cmp.expected
        if cmp.target == "mod_revision":
            return (kv.mod_revision if kv else 0) == cmp.expected
        if cmp.target == "create_revision":
            return (kv.create_revision if kv else 0) == cmp.expected
        raise KVError(f"unknown compare target {cmp.target!r}")

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[TxnOp], failure: Sequence[TxnOp] = ()
    ) -> TxnResult:
        self._expire_leases()
        ok = all(self._holds(c) for c in compare)
        ops = success if ok else failure
        result = TxnResult(succeeded=ok, revision=self._rev)
        # etcd gives one revision to all writes of a transaction.
        writes = any(isinstance(op, (Op.Put, Op.Delete)) for op in ops)
        rev = self._rev + 1 if writes else self._rev
        for op in ops:
            if isinstance(op, Op.Get):
                result.gets.append(self._data.get(op.key))
            elif isinstance(op, Op.Put):
                self._put(op.key, op.value, op.lease, rev)
            else:
                self._delete(op.key, op.prefix, rev)
        self._rev = rev
        result.revision = rev
        return result

    # ---------------------------------------------------------------- leases

    async def grant_lease(self, ttl_s: int) -> int:
        lease = next(self._lease_ids)
        self._leases[lease] = (ttl_s, time.monotonic() + ttl_s)
        if self._lease_task is None or self._lease_task.done():
            self._lease_task = asyncio.get_running_loop().create_task(self._lease_reaper())
        return lease

    async def refresh_lease(self, lease: int) -> None:
        if lease not in self._leases:
            raise KVError(f"lease {lease} not found")
        ttl, _ = self._leases[lease]
        self._leases[lease] = (ttl, time.monotonic() + ttl)

    async def revoke_lease(self, lease: int) -> None:
        self._leases.pop(lease, None)
        self._drop_lease_keys({lease})

    def _drop_lease_keys(self, leases: set[int]) -> None:
        keys = [k for k, kv in self._data.items() if kv.lease in leases]
        if keys:
            self._rev += 1
            for key in keys:
                self._delete(key, False, self._rev)

    def _expire_leases(self) -> None:
        now = time.monotonic()
        expired = {lease for lease, (_, deadline) in self._leases.items() if deadline <= now}
        if expired:
            for lease in expired:
                del self._leases[lease]
            self._drop_lease_keys(expired)

    async def _lease_reaper(self) -> None:
        while self._leases:
            await asyncio.sleep(0.2)
            self._expire_leases()

    # ---------------------------------------------------------------- watch

    def compact(self, revision: int) -> None:
        """Drop history up to ``revision`` (as etcd's compaction does)."""
        while self._history and self._history[0].revision <= revision:
            self._history.popleft()
        self._compacted = max(self._compacted, revision + 1)

    async def watch(self, prefix: str, from_revision: int = 0) -> AsyncIterator[WatchItem]:
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            # Everything up to ``seen`` was delivered (or predates the watch): later events
            # from the live queue with a revision <= seen are duplicates of the replay.
            seen = self._rev
            if from_revision > 0:
                if from_revision < self._compacted:
                    reason = str(CompactedError(from_revision, self._compacted))
                    yield WatchResync(self._list_now(prefix), seen, reason)
                else:
                    for ev in list(self._history):
                        if ev.revision >= from_revision and ev.revision <= seen and ev.key.startswith(prefix):
                            yield ev
            while True:
                ev = await queue.get()
                if ev.revision > seen and ev.key.startswith(prefix):
                    yield ev
        finally:
            self._watchers.discard(queue)

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
