"""Persisted pod records: a crash-safe local file plus a copy in etcd under the node's prefix.

The local file is the authority on this node: it is written atomically (temporary file, fsync,
rename) before a CNI request is answered, so a restarted agent knows every pod it wired even
when etcd is down and without asking a container engine. etcd holds a copy for the rest of the
cluster (netctl, other tools) and restores the records when the local file is lost; writes to
etcd that fail are retried in the background until etcd's copy matches the local one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from core.kvdb.api import KVBroker, KVError, agent_prefix, encode_model
from plugins.podmanager.api import LocalPod, PodID
from plugins.podmanager.writeorder import WriteOrder

#: Format version of the local records file.
RECORDS_FORMAT = 1


class RecordedInterface(BaseModel):
    """An interface of the pod's CNI result."""

    name: str
    mac: str = ""
    sandbox: str = ""


class RecordedIP(BaseModel):
    """An address of the pod's CNI result (CIDR form; ``interface`` indexes the interfaces)."""

    address: str
    gateway: str = ""
    interface: int = 0


class RecordedRoute(BaseModel):
    """A route of the pod's CNI result."""

    dst: str
    gw: str = ""


class PodResult(BaseModel):
    """What the agent answered to the pod's last successful ADD."""

    interfaces: list[RecordedInterface] = []
    ip_addresses: list[RecordedIP] = []
    routes: list[RecordedRoute] = []
    dns: dict[str, list[str]] = {}


class PodRecord(LocalPod):
    """A :class:`LocalPod` plus its CNI result; readers of :class:`LocalPod` ignore ``result``."""

    result: PodResult | None = None

    def as_local_pod(self) -> LocalPod:
        """The plain :class:`LocalPod` handed to event handlers."""
        return LocalPod(
            name=self.name,
            namespace=self.namespace,
            container_id=self.container_id,
            netns_path=self.netns_path,
            interface_name=self.interface_name,
        )


def records_prefix(node_label: str) -> str:
    """The etcd prefix of a node's pod records."""
    return f"{agent_prefix(node_label)}podmanager/pod/"


def record_key(node_label: str, pod: PodID) -> str:
    """The etcd key of one pod's record."""
    return f"{records_prefix(node_label)}{pod.namespace}/{pod.name}"


class RecordsFileError(Exception):
    """The local records file cannot be read (the message names the file and the reason)."""


def read_records_file(path: Path) -> dict[PodID, PodRecord] | None:
    """The records stored in ``path``, or None when the file does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordsFileError(f"{path}: cannot read: {exc}") from exc
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != RECORDS_FORMAT:
            raise RecordsFileError(f"{path}: not a pod records file of format {RECORDS_FORMAT}")
        pods = [PodRecord.model_validate(item) for item in doc.get("pods", [])]
    except (ValueError, ValidationError) as exc:
        raise RecordsFileError(f"{path}: corrupt pod records: {exc}") from exc
    return {pod.id: pod for pod in pods}


def write_records_file(
    path: Path, records: Mapping[PodID, PodRecord], fsync: bool = True
) -> None:
    """Replace ``path`` atomically with ``records``.

    The rename makes the file survive an agent crash at any point; ``fsync`` (of the file and
    its directory) also makes it survive a power loss.
    """
    write_records_text(path, [record_json(records[key]) for key in sorted(records)], fsync)


def record_json(record: PodRecord) -> str:
    """One record as it appears in the records file (compact JSON)."""
    return json.dumps(record.model_dump(mode="json"), separators=(",", ":"))


def write_records_text(path: Path, pods: list[str], fsync: bool) -> None:
    """:func:`write_records_file` for records already encoded by :func:`record_json`."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        # One write of the whole text: json.dump's many small writes are several times slower.
        out.write(f'{{"format":{RECORDS_FORMAT},"pods":[{",".join(pods)}]}}')
        if fsync:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class PodRecordStore:
    """The pod records of one node, in memory, in the local file and in etcd."""

    def __init__(
        self,
        path: Path,
        broker: KVBroker,
        node_label: str,
        etcd_timeout_s: float = 3.0,
        retry_interval_s: float = 2.0,
        log: logging.Logger | None = None,
        fsync: bool = False,
    ) -> None:
        self.path = path
        self.fsync = fsync
        self.broker = broker
        self.node_label = node_label
        self.etcd_timeout_s = etcd_timeout_s
        self.retry_interval_s = retry_interval_s
        self.log = log or logging.getLogger("contiv.podmanager.records")
        self._records: dict[PodID, PodRecord] = {}
        self._dump_cache: dict[PodID, tuple[PodRecord, str]] = {}
        #: Pods saved locally whose etcd copy is not written yet (see ``save(mirror=False)``).
        self._unmirrored: set[PodID] = set()
        self._file_lock = asyncio.Lock()
        # Group commit: every change bumps _changes; a write covers the changes counted
        # when it took its snapshot (_written), so callers queued behind it need none.
        self._changes = 0
        self._written = 0
        self._etcd_order = WriteOrder()
        self._etcd_stale = asyncio.Event()
        #: etcd deletes not awaited by their caller (see :meth:`remove`).
        self._background: set[asyncio.Future[None]] = set()
        #: False while etcd's copy may differ from the local records.
        self.etcd_in_sync = False
        self._adopt_from_etcd = False

    # Reading.
    def get(self, pod: PodID) -> PodRecord | None:
        return self._records.get(pod)

    def find_container(self, container_id: str) -> PodRecord | None:
        """The record of the pod whose sandbox is ``container_id``, if any."""
        for record in self._records.values():
            if record.container_id == container_id:
                return record
        return None

    def all(self) -> Mapping[PodID, PodRecord]:
        return dict(self._records)

    # Start-up.
    async def load(self) -> None:
        """Read the local file (or, when it is missing, etcd's copy) and reconcile etcd with it."""
        try:
            local = await asyncio.to_thread(read_records_file, self.path)
        except RecordsFileError as exc:
            # Keep the bad file for inspection and fall back to etcd's copy.
            aside = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, aside)
            self.log.error("%s; moved to %s, recovering from etcd", exc, aside)
            local = None
        if local is None:
            local = await self._read_etcd()
            # Local file lost and etcd unreachable: adopt etcd's records once it answers,
            # instead of wiping them with our empty view.
            self._adopt_from_etcd = local is None
            self._records = local or {}
            await self._write_file()
            source = "etcd" if local is not None else "nothing (no local file, etcd unreachable)"
        else:
            self._records = local
            source = str(self.path)
        self.log.info("loaded %d pod records from %s", len(self._records), source)
        await self.sync_etcd()

    async def _read_etcd(self) -> dict[PodID, PodRecord] | None:
        try:
            async with asyncio.timeout(self.etcd_timeout_s):
                kvs = await self.broker.list(records_prefix(self.node_label))
        except (KVError, TimeoutError, OSError) as exc:
            self.log.warning("cannot read pod records from etcd: %s", exc)
            return None
        records: dict[PodID, PodRecord] = {}
        for kv in kvs:
            try:
                record = PodRecord.model_validate_json(kv.value)
            except ValidationError as exc:
                self.log.error("ignoring corrupt pod record %s: %s", kv.key, exc)
                continue
            records[record.id] = record
        return records

    # Changes.
    async def save(self, record: PodRecord, *, mirror: bool = True) -> None:
        """Store ``record`` (replacing the pod's previous one) in the local file and in etcd.

        With ``mirror=False`` only the local file is written (it alone is what a restarted
        agent relies on); the caller is expected to save the pod again, or to call
        :meth:`mirror`, before it answers. Saves an etcd round trip on the ADD path.
        """
        self._records[record.id] = record
        if not mirror:
            await self._write_file()
            self._unmirrored.add(record.id)
            return
        # Both copies are written before this returns; the file write (in a thread) overlaps
        # etcd's round trip. A failed file write still raises, after etcd's write finished.
        etcd = asyncio.ensure_future(self._etcd_write(record.id, record))
        try:
            await self._write_file(in_thread=True)
        finally:
            await etcd

    async def mirror(self, pod: PodID) -> None:
        """Write the pod's current record (or its absence) to etcd if not done yet."""
        if pod in self._unmirrored:
            await self._etcd_write(pod, self._records.get(pod))

    async def remove(self, pod: PodID) -> None:
        """Forget the pod's record in the local file; etcd's copy goes in the background.

        The DEL reply does not wait for etcd's round trip: a restarted agent reads the local
        file, and etcd's writes stay in order (per pod, queued in call order), so a later ADD
        of the same pod is written after this delete. A failed delete is retried by the sync.
        """
        if self._records.pop(pod, None) is None:
            return
        await self._write_file()
        self._unmirrored.discard(pod)
        task = asyncio.ensure_future(self._etcd_apply(pod, None))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the background etcd writes started so far."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _dumped(self, pod: PodID, record: PodRecord) -> str:
        # Records are immutable once stored (a change stores a new object): encode each once.
        cached = self._dump_cache.get(pod)
        if cached is None or cached[0] is not record:
            cached = (record, record_json(record))
            self._dump_cache[pod] = cached
        return cached[1]

    async def _write_file(self, in_thread: bool = False) -> None:
        """Write the records, as they are now, to the local file before returning.

        Without fsync the write is a page-cache copy done on the event loop: a thread hop
        costs more (and, on a busy machine, waits to be scheduled), unless something else
        runs meanwhile (``in_thread``: etcd's write of the ADD's result). Writes are
        group-committed: saves that queue behind a write in progress (in a thread) get one
        write of all their changes together.
        """
        self._changes += 1
        mine = self._changes
        async with self._file_lock:
            if self._written >= mine:
                return  # a write that started after this change took it along
            covered = self._changes
            for gone in self._dump_cache.keys() - self._records.keys():
                del self._dump_cache[gone]
            # PodID's order, compared as plain tuples (its generated __lt__ is Python code,
            # ~1.5 ms per write at 150 pods).
            records = self._records
            pods = [self._dumped(key, records[key])
                    for key in sorted(records, key=lambda p: (p.name, p.namespace))]
            if self.fsync or in_thread:
                await asyncio.to_thread(write_records_text, self.path, pods, self.fsync)
            else:
                write_records_text(self.path, pods, False)
            self._written = covered

    async def _etcd_write(self, pod: PodID, record: PodRecord | None) -> None:
        self._unmirrored.discard(pod)
        await self._etcd_apply(pod, record)

    async def _etcd_apply(self, pod: PodID, record: PodRecord | None) -> None:
        key = record_key(self.node_label, pod)
        async with self._etcd_order.write(pod):
            try:
                async with asyncio.timeout(self.etcd_timeout_s):
                    if record is None:
                        await self.broker.delete(key)
                    else:
                        await self.broker.put(key, encode_model(record))
            except (KVError, TimeoutError, OSError) as exc:
                self.log.warning("pod record %s not written to etcd (retrying later): %s", pod, exc)
                self._mark_stale()

    def _mark_stale(self) -> None:
        self.etcd_in_sync = False
        self._etcd_stale.set()

    # etcd reconciliation.
    async def sync_etcd(self) -> bool:
        """Make etcd's copy equal the local records; False (and retried later) on failure."""
        prefix = records_prefix(self.node_label)
        async with self._etcd_order.exclusive():
            try:
                async with asyncio.timeout(self.etcd_timeout_s):
                    listed = await self.broker.list(prefix)
                stored = {kv.key: kv.value for kv in listed}
                if self._adopt_from_etcd:
                    await self._adopt(stored)
                self._unmirrored.clear()
                wanted = {
                    record_key(self.node_label, pod): encode_model(record)
                    for pod, record in self._records.items()
                }
                for key, value in wanted.items():
                    if stored.get(key) != value:
                        async with asyncio.timeout(self.etcd_timeout_s):
                            await self.broker.put(key, value)
                for key in stored.keys() - wanted.keys():
                    async with asyncio.timeout(self.etcd_timeout_s):
                        await self.broker.delete(key)
            except (KVError, TimeoutError, OSError) as exc:
                self.log.warning("pod records in etcd not synchronised (retrying later): %s", exc)
                self._mark_stale()
                return False
        self.etcd_in_sync = True
        return True

    async def _adopt(self, stored: Mapping[str, bytes]) -> None:
        for key, value in stored.items():
            try:
                record = PodRecord.model_validate_json(value)
            except ValidationError as exc:
                self.log.error("ignoring corrupt pod record %s: %s", key, exc)
                continue
            self._records.setdefault(record.id, record)
        self._adopt_from_etcd = False
        await self._write_file()

    async def run_etcd_sync(self) -> None:
        """Background task: re-synchronise etcd whenever a write to it failed."""
        while True:
            await self._etcd_stale.wait()
            self._etcd_stale.clear()
            await asyncio.sleep(self.retry_interval_s)
            await self.sync_etcd()
