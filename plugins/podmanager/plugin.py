"""The pod manager plugin: the agent's CNI server and the persisted records of local pods."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Protocol

from core.http import HTTPPlugin
from core.kvdb.api import KVBroker
from core.metrics import MetricsPlugin
from core.plugin import Plugin, PluginConfig
from core.servicelabel import ServiceLabelAPI
from plugins.controller.api import ControllerAPI, Event, EventHandler, Transaction
from plugins.podmanager.api import AddPod, DeletePod, LocalPod, PodID
from plugins.podmanager.config import PodManagerConfig
from plugins.podmanager.conflist import ConflistPresence
from plugins.podmanager.records import PodRecordStore
from plugins.podmanager.rest import pod_routes
from plugins.podmanager.server import RemoteCNIServer
from plugins.podmanager.service import PodRequestService, queued_deletes_dir
from plugins.podmanager.stats import RequestStats


class KVDBProvider(Protocol):
    """The kvdb plugin as used here: its broker, ready after its ``init``."""

    @property
    def broker(self) -> KVBroker: ...


class PodManagerPlugin(Plugin, EventHandler):
    """Serves ``RemoteCNI`` (ADD/DEL/CHECK from ``contiv-cni``) and records the pods it wired.

    ADD pushes a blocking :class:`~plugins.podmanager.api.AddPod` event into the controller and
    answers with the result the handlers filled in; DEL pushes a blocking ``DeletePod``. The
    records (``LocalPod`` plus the last result) are kept in a crash-safe local file and in etcd
    under ``/vnf-agent/<node>/podmanager/pod/<namespace>/<name>``, and are loaded in ``init`` so
    every handler's first resync sees the pods wired before a restart. Implements
    :class:`~plugins.podmanager.api.PodManagerAPI`. With ``http``: ``GET /contiv/v1/pods`` and
    ``/contiv/v1/pods/cni-stats``; with ``metrics``: ``contiv_podmanager_cni_request_seconds``.
    """

    #: AddPods/DeletePods of different pods may be updated before one commit (batch.py).
    supports_batching = True

    name: ClassVar[str] = "podmanager"
    Config: ClassVar[type[PluginConfig]] = PodManagerConfig

    config: PodManagerConfig

    def __init__(
        self,
        config: PodManagerConfig | None = None,
        *,
        controller: ControllerAPI,
        kvdb: KVDBProvider,
        service_label: ServiceLabelAPI,
        http: HTTPPlugin | None = None,
        metrics: MetricsPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.controller = controller
        self.kvdb = kvdb
        self.service_label = service_label
        self.http = http
        self.metrics = metrics
        self.stats: RequestStats | None = None
        self._store: PodRecordStore | None = None
        self._server: RemoteCNIServer | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._cleanup_task: asyncio.Task[list[PodID]] | None = None
        self._conflist: ConflistPresence | None = None

    def _require_store(self) -> PodRecordStore:
        # A method, not a property: pluggy reads every attribute when registering the plugin.
        if self._store is None:
            raise RuntimeError("podmanager is not initialised")
        return self._store

    async def init(self) -> None:
        self._store = PodRecordStore(
            Path(self.config.records_file),
            self.kvdb.broker,
            self.service_label.label,
            etcd_timeout_s=self.config.etcd_timeout_s,
            retry_interval_s=self.config.etcd_retry_interval_s,
            log=self.log,
            fsync=self.config.records_fsync,
        )
        await self._store.load()
        self.stats = RequestStats(self.metrics.registry if self.metrics is not None else None)
        if self.http is not None:
            self.http.add_router(pod_routes(self._store.all, self.stats))

    async def after_init(self) -> None:
        store = self._require_store()
        service = PodRequestService(
            store, self.controller, self.config.event_timeout_s, self.log, self.stats
        )
        self._sync_task = asyncio.create_task(
            store.run_etcd_sync(), name="podmanager-etcd-sync"
        )
        self._server = RemoteCNIServer(self.config.socket_path, service, self.log)
        await self._server.start()
        if self.config.staged_conflist:
            # Serving now: the runtime may send pods (a failure here fails the start).
            self._conflist = ConflistPresence(
                Path(self.config.staged_conflist), Path(self.config.cni_conf_dir), self.log
            )
            self._conflist.put()
        self._cleanup_task = asyncio.create_task(
            service.clean_after_start(queued_deletes_dir(self.config.socket_path)),
            name="podmanager-after-start",
        )

    async def close(self) -> None:
        if self._conflist is not None:
            # First, so that the runtime stops sending pods before the server goes.
            if self.config.remove_conf_on_stop:
                self._conflist.remove()
            self._conflist = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup_task
            self._cleanup_task = None
        if self._store is not None:
            await self._store.drain()
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
            self._sync_task = None

    # Event handler (adopted by the controller at start): like Contiv's pod manager it takes part
    # in the pod events, which shows in the event history. The records are kept by the request
    # service itself (persisted before the event, removed after a failed one), so here the pod
    # events are only acknowledged.
    def handles_event(self, event: Event) -> bool:
        return isinstance(event, (AddPod, DeletePod))

    def update(self, event: Event, txn: Transaction) -> str | None:
        if isinstance(event, AddPod):
            return f"pod {event.pod.id} recorded in {event.pod.netns_path}"
        if isinstance(event, DeletePod):
            return f"pod {event.pod.id} forgotten"
        return None

    def local_pods(self) -> Mapping[PodID, LocalPod]:
        """Pods currently wired on this node (their records; each is a ``LocalPod``).

        Empty before ``init`` loaded the records.
        """
        return {} if self._store is None else self._store.all()
