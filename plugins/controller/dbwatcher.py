"""The dbwatcher: etcd -> DBResync / KubeStateChange / ExternalConfigChange events, with a local mirror.

It watches ``/vnf-agent/contiv-ksr/`` (Kubernetes state, resources registered by keyword) and
``/vnf-agent/<node>/config/`` (external dataplane config; the key relative to
``/vnf-agent/<node>/`` is the scheduler key). Every snapshot and change is written to the local
mirror first. Per key it remembers the last processed revision so that no change is delivered
twice (snapshot vs. watch overlap, watch resumption). When etcd is unreachable at start, it
resyncs from the mirror after ``delay_local_resync_s``; it probes etcd and makes a new remote
resync whenever etcd comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, ValidationError

from core.kvdb.api import (
    EventType,
    KeyValue,
    KVBroker,
    WatchEvent,
    WatchResync,
    agent_prefix,
)
from plugins.controller.api import Event
from plugins.controller.config import DBWatcherConfig
from plugins.controller.errors import EventQueueFullError
from plugins.controller.events import DBResync, ExternalConfigChange, KubeStateChange
from plugins.controller.kubestate import KSR_PREFIX, ResourceRegistry
from plugins.controller.mirror import LocalMirror
from plugins.controller.processing import ETCD_SOURCE

#: Given a scheduler key, the model its values parse into (None: unknown key).
ConfigModelResolver = Callable[[str], type[BaseModel] | None]
PushEvent = Callable[[Event], None]
#: Waits until the event queue can take one more event (``True``: a resync).
WaitForRoom = Callable[[bool], Awaitable[None]]

log = logging.getLogger("contiv.controller.dbwatcher")


class DBWatcher:
    """Turns the watched etcd prefixes into controller events."""

    def __init__(
        self,
        broker: KVBroker,
        node_name: str,
        resources: ResourceRegistry,
        config_models: ConfigModelResolver,
        push: PushEvent,
        config: DBWatcherConfig | None = None,
        mirror: LocalMirror | None = None,
        wait_for_room: WaitForRoom | None = None,
    ) -> None:
        self.broker = broker
        #: Backpressure: a change waits for room in the event queue instead of overflowing it
        #: (an overflow costs a full resync: every key listed and parsed again).
        self.wait_for_room = wait_for_room
        self.resources = resources
        self.config_models = config_models
        self.push = push
        self.config = config or DBWatcherConfig()
        self.mirror = mirror
        self.agent_prefix = agent_prefix(node_name)
        self.config_prefix = self.agent_prefix + "config/"
        self.connected = False
        self.remote_resyncs = 0
        self.local_resyncs = 0
        self._processed: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._watches: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._resync_requested = False
        #: The highest etcd revision seen (resync snapshot or watched change).
        self._seen_revision = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="controller-dbwatcher")

    async def stop(self) -> None:
        tasks = [*self._watches, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watches.clear()
        self._task = None

    def request_resync(self) -> None:
        """Ask for a new remote resync (``POST /controller/resync``, queue overflow)."""
        self._resync_requested = True
        self._wake.set()

    # -- main loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.delay_local_resync_s
        while not await self._remote_resync():
            if loop.time() >= deadline:
                await self._local_resync()
                break
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
        while True:
            try:
                async with asyncio.timeout(self.config.remote_db_probing_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            requested, self._resync_requested = self._resync_requested, False
            if not self.connected or requested:
                if not self.connected and not await self._probe():
                    continue
                if not await self._remote_resync() and requested:
                    self._resync_requested = True
            elif not await self._probe():
                log.warning("etcd unreachable: watching stopped until it is back")
                await self._disconnect()
            elif await self._went_back():
                # A restore from an older snapshot: the watches would wait for revisions the
                # store reaches only much later and miss every change meanwhile.
                log.warning("etcd's revision went back (restored?): resyncing from etcd")
                if not await self._remote_resync():
                    self._resync_requested = True

    async def _went_back(self) -> bool:
        """True when etcd's current revision is below one already seen (etcd restored)."""
        try:
            async with asyncio.timeout(self.config.probe_timeout_s):
                revision = await self.broker.revision()
        except Exception:  # noqa: BLE001 - the next probe finds out
            return False
        return revision < self._seen_revision

    async def _probe(self) -> bool:
        try:
            async with asyncio.timeout(self.config.probe_timeout_s):
                return await self.broker.healthy()
        except Exception:  # noqa: BLE001 - any failure means unreachable
            return False

    async def _disconnect(self) -> None:
        self.connected = False
        watches, self._watches = self._watches, []
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)

    # -- resyncs ---------------------------------------------------------------------------

    async def _remote_resync(self) -> bool:
        """List both prefixes, mirror them, push a DBResync and (re)start watching."""
        # Stop the old watches first: a change they delivered after the listing would be
        # delivered again by the new watches, which start at the snapshot's revision.
        await self._disconnect()
        if self.wait_for_room is not None:  # a snapshot the queue cannot take would be wasted
            await self.wait_for_room(True)
        try:
            async with asyncio.timeout(self.config.probe_timeout_s):
                revision = await self.broker.revision()
                ksr = await self.broker.list(KSR_PREFIX)
                external = await self.broker.list(self.config_prefix)
        except Exception as exc:  # noqa: BLE001 - unreachable or failing: retried by the loop
            log.debug("remote resync failed: %s", exc)
            return False
        snapshot = [*ksr, *external]
        if self.mirror is not None:
            self.mirror.replace(snapshot, revision)
        event = self._resync_event(snapshot, local=False, revision=revision)
        try:
            self.push(event)
        except EventQueueFullError as exc:
            log.error("remote resync not queued (%s); retrying", exc)
            self._resync_requested = True
            return False
        self._processed = {kv.key: kv.mod_revision for kv in snapshot}
        self._seen_revision = revision
        self.remote_resyncs += 1
        self.connected = True
        self._watches = [
            asyncio.create_task(self._watch(prefix, revision + 1), name=f"dbwatcher {prefix}")
            for prefix in (KSR_PREFIX, self.config_prefix)
        ]
        log.info("resynced from etcd at revision %d (%d keys)", revision, len(snapshot))
        return True

    async def _local_resync(self) -> None:
        if self.mirror is None:
            log.warning("etcd unreachable and no local mirror: waiting for etcd")
            return
        kvs, revision = self.mirror.load()
        event = self._resync_event(kvs, local=True, revision=revision)
        try:
            self.push(event)
        except EventQueueFullError as exc:
            log.error("local resync not queued: %s", exc)
            return
        self._processed = {kv.key: kv.mod_revision for kv in kvs}
        self.local_resyncs += 1
        log.warning("etcd unreachable: resynced from the local mirror (revision %d)", revision)

    def _resync_event(self, snapshot: Sequence[KeyValue], *, local: bool, revision: int) -> DBResync:
        kube_state: dict[str, dict[str, BaseModel]] = {k: {} for k in self.resources.keywords()}
        external: dict[str, BaseModel] = {}
        for kv in snapshot:
            if kv.key.startswith(KSR_PREFIX):
                parsed = self.resources.parse(kv.key[len(KSR_PREFIX) :], kv.value)
                if parsed is not None:
                    resource, suffix, value = parsed
                    kube_state[resource.keyword][suffix] = value
            elif kv.key.startswith(self.config_prefix):
                model_value = self._parse_config(kv.key, kv.value)
                if model_value is not None:
                    external[kv.key[len(self.agent_prefix) :]] = model_value
        return DBResync(kube_state, external, local=local, revision=revision)

    def _parse_config(self, key: str, raw: bytes) -> BaseModel | None:
        scheduler_key = key[len(self.agent_prefix) :]
        model = self.config_models(scheduler_key)
        if model is None:
            log.error("ignoring external config %s: no model is registered for this key", key)
            return None
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            log.error("ignoring invalid external config %s: %s", key, exc.errors(include_url=False))
            return None

    # -- watching --------------------------------------------------------------------------

    async def _watch(self, prefix: str, from_revision: int) -> None:
        watch = self.broker.watch(prefix, from_revision)
        try:
            async for item in watch:
                if isinstance(item, WatchResync):
                    log.warning("watch of %s needs a resync: %s", prefix, item.reason)
                    self.request_resync()
                    return
                if self.wait_for_room is not None:
                    await self.wait_for_room(False)
                self._on_change(item)
        except Exception as exc:  # noqa: BLE001 - a broken watch is repaired by a resync
            log.error("watch of %s failed: %s", prefix, exc)
            self.request_resync()

    def _on_change(self, change: WatchEvent) -> None:
        if change.revision <= self._processed.get(change.key, 0):
            return  # already in the snapshot or delivered before
        value = change.value if change.type is EventType.PUT else None
        event = self._change_event(change, value)
        if event is not None:
            try:
                self.push(event)
            except EventQueueFullError as exc:
                # Never lose a change: the resync snapshot will carry it.
                log.error("change at revision %d not queued (%s): resyncing", change.revision, exc)
                self.request_resync()
                return
        self._processed[change.key] = change.revision
        self._seen_revision = max(self._seen_revision, change.revision)
        if self.mirror is not None:
            self.mirror.apply(change.key, value, change.revision)

    def _change_event(self, change: WatchEvent, value: bytes | None) -> Event | None:
        key = change.key
        if key.startswith(KSR_PREFIX):
            relative = key[len(KSR_PREFIX) :]
            resource = self.resources.match(relative)
            if resource is None:
                return None
            suffix = relative[len(resource.key_prefix) :]
            # An invalid new value is kept out: to handlers the object is gone. The previous
            # value is filled in by the controller from its cache (what handlers last saw).
            new = self.resources.parse(relative, value) if value is not None else None
            new_value = new[2] if new is not None else None
            return KubeStateChange(resource.keyword, suffix, None, new_value, revision=change.revision)
        if key.startswith(self.config_prefix):
            parsed = self._parse_config(key, value) if value is not None else None
            return ExternalConfigChange(
                ETCD_SOURCE, {key[len(self.agent_prefix) :]: parsed}, revision=change.revision
            )
        return None
