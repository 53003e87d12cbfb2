"""One reflector: keeps one Kubernetes resource mirrored under its etcd prefix.

The reflector holds a cache of the source's objects (converted and encoded, keyed by their
relative etcd key). Contiv's algorithm (contiv.md 2.3):

* Until the source has delivered its first full list nothing is written.
* Then a **mark-and-sweep resync**: list the etcd prefix, put every cached object that is missing
  or differs, delete every key the cache does not have. On success the reflector is
  *datastore-synced* and follows changes incrementally (put on add/update when the value
  changed, delete on delete), batching whatever arrived together into transactions.
* Any write error drops it out of sync and schedules a resync with exponential back-off
  (``backoff_initial_s`` doubling up to ``backoff_max_s``). While out of sync, or while the
  datastore is reported down, changes only update the cache; the next resync writes them.
* A re-list by the source (410 Gone) replaces the cache and resyncs.
* Objects that do not convert are counted (``arg_errors``), logged with their name and skipped;
  one that was good before keeps its last good value in etcd (also across resyncs).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from core.kvdb.api import KVError, encode_model
from plugins.ksr import keys as ks
from plugins.ksr import model as m
from plugins.ksr.convert import BadObjectError, convert, object_name
from plugins.ksr.source import DELETED, Changed, RawObject, Relisted, SourceItem
from plugins.ksr.writer import NotLeaderError, Writer

log = logging.getLogger("contiv.ksr")

#: Called with the relative keys the reflector deleted from etcd (after the delete succeeded),
#: and with an empty list after each resync.
DeleteHook = Callable[[Sequence[str]], Awaitable[None]]


#: Objects whose updates are not reflected (Contiv: they change all the time because of the
#: leader-election annotations of the control plane), by keyword and relative key.
IGNORED_UPDATES: dict[str, frozenset[str]] = {
    "endpoints": frozenset(
        ks.endpoints_key(name, "kube-system") for name in ("kube-controller-manager", "kube-scheduler")
    ),
}


class _Resync:
    """Queue marker: run a full mark-and-sweep resync."""


_RESYNC = _Resync()
QueueItem = SourceItem | _Resync


class Reflector:
    """Mirrors one resource (``keyword``) from a source into etcd."""

    def __init__(
        self,
        keyword: str,
        writer: Writer,
        stats: m.ReflectorStats,
        *,
        on_deleted: DeleteHook | None = None,
        on_state: Callable[[Reflector], None] | None = None,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 1.0,
        latency_samples: int = 100_000,
        pod_annotation_prefixes: Sequence[str] = (m.POD_ANNOTATION_PREFIX,),
    ) -> None:
        if keyword not in ks.RESOURCES:
            raise ValueError(f"unknown KSR resource {keyword!r}")
        self.keyword = keyword
        self.prefix = m.KSR_PREFIX + ks.RESOURCES[keyword][0]
        self.writer = writer
        self.stats = stats
        self.pod_annotation_prefixes = tuple(pod_annotation_prefixes)
        self._on_deleted = on_deleted
        self._on_state = on_state
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._backoff = backoff_initial_s
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self._retry: asyncio.TimerHandle | None = None
        #: Relative key -> encoded value, as the source has it now.
        self.cache: dict[str, bytes] = {}
        #: The source delivered its first full list.
        self.source_synced = False
        #: etcd holds exactly the cache (Contiv's ``dsSynced``).
        self.ds_synced = False
        #: The datastore was reported down: write nothing until it is back.
        self.datastore_down = False
        #: Seconds from a watch event's arrival to its etcd write being committed.
        self.latencies: collections.deque[float] = collections.deque(maxlen=latency_samples)
        self.on_write: Callable[[float], None] | None = None
        self._new_keys: set[str] = set()
        #: Keys of objects the source has but that do not convert.
        self._bad_keys: set[str] = set()
        self.log = log.getChild(keyword)

    # ------------------------------------------------------------------ inputs (loop thread)

    def deliver(self, item: SourceItem) -> None:
        """Queue an item from the source."""
        self._queue.put_nowait(item)

    def request_resync(self) -> None:
        """Resync as soon as possible (the datastore came back or lost data)."""
        self.datastore_down = False
        self._set_synced(False)
        self._queue.put_nowait(_RESYNC)

    def set_datastore_down(self) -> None:
        """Stop writing until :meth:`request_resync`."""
        self.datastore_down = True
        self._set_synced(False)

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Process the queue forever (cancel the task to stop)."""
        try:
            while True:
                batch = [await self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._process(batch)
        finally:
            if self._retry is not None:
                self._retry.cancel()

    async def _process(self, batch: list[QueueItem]) -> None:
        full = False
        dirty: dict[str, bytes | None] = {}
        received: list[float] = []
        self._new_keys = set()
        for item in batch:
            if isinstance(item, _Resync):
                full = True
            elif isinstance(item, Relisted):
                self._replace(item.objects)
                full = True
            else:
                if self._apply_change(item, dirty) and item.received:
                    received.append(item.received)
        if not self.source_synced or self.datastore_down:
            return
        if full or not self.ds_synced:
            if full or self._retry is None:
                await self._resync()
            return
        await self._write_changes(dirty, received)

    def _replace(self, objects: Sequence[RawObject]) -> None:
        self._bad_keys = set()
        cache: dict[str, bytes] = {}
        for obj in objects:
            converted = self._convert(obj)
            if converted is not None:
                cache[converted[0]] = converted[1]
        self.cache = cache
        self.source_synced = True

    def _convert(self, obj: RawObject) -> tuple[str, bytes] | None:
        try:
            key, value = convert(self.keyword, obj, self.pod_annotation_prefixes)
        except BadObjectError as err:
            namespace, name = object_name(obj)
            self.stats.arg_errors += 1
            self.log.warning("skipping bad %s %s: %s", self.keyword, f"{namespace}/{name}".strip("/"), err)
            try:
                self._bad_keys.add(ks.object_key(self.keyword, name, namespace))
            except ValueError:
                pass  # no usable name: nothing in etcd can be its
            return None
        self._bad_keys.discard(key)
        return key, encode_model(value)

    def _apply_change(self, item: Changed, dirty: dict[str, bytes | None]) -> bool:
        """Update the cache; True when the change needs a write."""
        if item.type == DELETED:
            namespace, name = object_name(item.object)
            try:
                key = ks.object_key(self.keyword, name, namespace)
            except ValueError as err:
                self.stats.arg_errors += 1
                self.log.warning("skipping bad %s deletion: %s", self.keyword, err)
                return False
            self._bad_keys.discard(key)
            if self.cache.pop(key, None) is None:
                return False
            dirty[key] = None
            return True
        converted = self._convert(item.object)
        if converted is None:
            return False
        key, value = converted
        old = self.cache.get(key)
        if old == value:
            return False  # nothing the agent sees changed (e.g. only the resourceVersion)
        if old is not None and self.keyword in IGNORED_UPDATES and key in IGNORED_UPDATES[self.keyword]:
            return False
        if old is None:
            self._new_keys.add(key)
        dirty[key] = value
        self.cache[key] = value
        return True

    # ------------------------------------------------------------------ writing

    async def _write_changes(self, dirty: dict[str, bytes | None], received: list[float]) -> None:
        if not dirty:
            return
        puts = {m.KSR_PREFIX + k: v for k, v in dirty.items() if v is not None}
        deletes = [k for k, v in dirty.items() if v is None]
        try:
            await self.writer.apply(puts, [m.KSR_PREFIX + k for k in deletes])
        except KVError as err:
            # Counted per kind of change, then everything is left to the resync.
            added = sum(1 for k, v in dirty.items() if v is not None and k in self._new_keys)
            self.stats.add_errors += added
            self.stats.upd_errors += len(puts) - added
            self.stats.del_errors += len(deletes)
            self._failed(err, "write")
            return
        now = time.monotonic()
        for started in received:
            self.latencies.append(now - started)
            if self.on_write is not None:
                self.on_write(now - started)
        added = sum(1 for k, v in dirty.items() if v is not None and k in self._new_keys)
        self.stats.adds += added
        self.stats.updates += len(puts) - added
        self.stats.deletes += len(deletes)
        if deletes and self._on_deleted is not None:
            await self._run_delete_hook(deletes)

    async def _resync(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self.stats.resyncs += 1
        try:
            stored = {kv.key[len(m.KSR_PREFIX):]: kv.value for kv in await self.writer.broker.list(self.prefix)}
            cache = self.cache
            puts = {m.KSR_PREFIX + k: v for k, v in cache.items() if stored.get(k) != v}
            # An object that became bad keeps its last good value rather than vanishing.
            deletes = [k for k in stored if k not in cache and k not in self._bad_keys]
            await self.writer.apply(puts, [m.KSR_PREFIX + k for k in deletes])
        except KVError as err:
            self.stats.res_errors += 1
            self._failed(err, "resync")
            return
        added = sum(1 for k in puts if k[len(m.KSR_PREFIX):] not in stored)
        self.stats.adds += added
        self.stats.updates += len(puts) - added
        self.stats.deletes += len(deletes)
        self._backoff = self._backoff_initial_s
        self._set_synced(True)
        self.log.info(
            "resynced %d objects: %d added, %d updated, %d deleted",
            len(cache), added, len(puts) - added, len(deletes),
        )
        if self._on_deleted is not None:
            # Also after a resync without deletions: the hook retries work that failed before.
            await self._run_delete_hook(deletes)

    async def _run_delete_hook(self, keys: Sequence[str]) -> None:
        assert self._on_deleted is not None
        try:
            await self._on_deleted(keys)
        except KVError as err:
            self._failed(err, "cleanup")

    def _failed(self, err: KVError, what: str) -> None:
        self._set_synced(False)
        if isinstance(err, NotLeaderError):
            self.log.warning("%s refused: %s", what, err)
            return  # the election loop stops this reflector
        delay = self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_max_s)
        self.log.warning("%s failed (%s); resync in %.1fs", what, err, delay)
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self._queue.put_nowait(_RESYNC)

    def _set_synced(self, synced: bool) -> None:
        changed = synced != self.ds_synced
        self.ds_synced = synced
        if changed and self._on_state is not None:
            self._on_state(self)
