"""The reflectors of one leadership term, with the datastore monitor and the gauges writer.

Contiv's reflector registry (contiv.md 2.3): every ``monitor_interval_s`` the datastore health is
checked; down stops all writes, up resyncs every reflector. Data loss is detected too: when the
store's revision went backwards (etcd restored or replaced) or the ``status/gauges`` key this
term wrote has vanished (etcd wiped), everything is resynced and the gauges are written anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

from core.kvdb.api import KVError, encode_model
from plugins.ksr import model as m
from plugins.ksr.nodecleanup import NodeCleanup
from plugins.ksr.reflector import Reflector
from plugins.ksr.source import Source, SourceItem
from plugins.ksr.writer import Writer

log = logging.getLogger("contiv.ksr")

GAUGES_KEY = m.KSR_PREFIX + m.STATUS_GAUGES_KEY


class ReflectorSet:
    """Creates, runs and stops the reflectors for one source."""

    def __init__(
        self,
        keywords: Sequence[str],
        source: Source,
        writer: Writer,
        stats: Mapping[str, m.ReflectorStats],
        *,
        instance_id: str = "",
        monitor_interval_s: float = 1.0,
        stats_interval_s: float = 10.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 1.0,
        on_state: Callable[[Reflector], None] | None = None,
        on_write: Callable[[float], None] | None = None,
        pod_annotation_prefixes: Sequence[str] = (m.POD_ANNOTATION_PREFIX,),
    ) -> None:
        self.source = source
        self.writer = writer
        self.broker = writer.broker
        self.instance_id = instance_id
        self.monitor_interval_s = monitor_interval_s
        self.stats_interval_s = stats_interval_s
        self.node_cleanup = NodeCleanup(writer)
        self.reflectors: dict[str, Reflector] = {}
        for keyword in keywords:
            reflector = Reflector(
                keyword,
                writer,
                stats[keyword],
                on_deleted=self.node_cleanup if keyword == "node" else None,
                on_state=on_state,
                backoff_initial_s=backoff_initial_s,
                backoff_max_s=backoff_max_s,
                pod_annotation_prefixes=pod_annotation_prefixes,
            )
            reflector.on_write = on_write
            self.reflectors[keyword] = reflector
        self.datastore_down = False
        self.data_losses = 0
        self._max_revision = 0
        self._gauges_revision = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def synced(self) -> dict[str, bool]:
        return {k: r.ds_synced for k, r in self.reflectors.items()}

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        for keyword, reflector in self.reflectors.items():
            self._tasks.append(loop.create_task(reflector.run(), name=f"ksr-reflector-{keyword}"))
        self._tasks.append(loop.create_task(self._monitor(), name="ksr-monitor"))
        self._tasks.append(loop.create_task(self._gauges_loop(), name="ksr-gauges"))
        try:
            await self.source.start(list(self.reflectors), self._sink)
        except BaseException:
            await self.stop()
            raise

    def _sink(self, keyword: str, item: SourceItem) -> None:
        # Sources call this from worker threads; hand the item to the loop.
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._deliver, keyword, item)

    def _deliver(self, keyword: str, item: SourceItem) -> None:
        if not self._closed:
            self.reflectors[keyword].deliver(item)

    async def stop(self) -> None:
        self._closed = True
        await self.source.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # ------------------------------------------------------------------ datastore monitor

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.monitor_interval_s)
            try:
                await self.check_datastore()
            except KVError as err:
                log.debug("datastore check failed: %s", err)

    async def check_datastore(self) -> None:
        """One monitor round: down/up transitions and data-loss detection."""
        if not await self.broker.healthy():
            if not self.datastore_down:
                log.warning("datastore is down: reflectors stop writing")
                self.datastore_down = True
                for reflector in self.reflectors.values():
                    reflector.set_datastore_down()
            return
        if self.datastore_down:
            log.info("datastore is back: resyncing every reflector")
            self.datastore_down = False
            self._resync_all()
            return
        revision = await self.broker.revision()
        lost = ""
        if revision < self._max_revision:
            lost = f"revision went backwards ({self._max_revision} -> {revision})"
        elif self._gauges_revision and await self.broker.get(GAUGES_KEY) is None:
            lost = f"{GAUGES_KEY} vanished"
        if lost:
            self.data_losses += 1
            log.warning("datastore lost data (%s): resyncing every reflector", lost)
            self._max_revision = 0
            self._gauges_revision = 0
            self._resync_all()
            return
        self._max_revision = max(self._max_revision, revision)
        if not self._gauges_revision and all(r.ds_synced for r in self.reflectors.values()):
            await self.write_gauges()

    def _resync_all(self) -> None:
        for reflector in self.reflectors.values():
            reflector.request_resync()

    # ------------------------------------------------------------------ gauges

    async def _gauges_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval_s)
            if self.datastore_down:
                continue
            try:
                await self.write_gauges()
            except KVError as err:
                log.warning("could not write %s: %s", GAUGES_KEY, err)

    def gauges(self) -> m.KsrGauges:
        return m.KsrGauges(
            stats={k: r.stats for k, r in self.reflectors.items()},
            synced=self.synced(),
            leader=self.instance_id,
        )

    async def write_gauges(self) -> None:
        await self.writer.apply({GAUGES_KEY: encode_model(self.gauges())})
        written = await self.broker.get(GAUGES_KEY)
        if written is not None:
            self._gauges_revision = written.mod_revision
            self._max_revision = max(self._max_revision, written.mod_revision)
