"""The dbwatcher against the memory broker and a real etcd: resyncs, changes, mirror, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from core.etcdserver import EtcdServer
from core.kvdb.api import KVBroker, KVError
from core.kvdb.etcd import EtcdBroker
from core.kvdb.memory import MemoryBroker
from core.plugin import Plugin
from plugins.controller.api import Event, EventHandler, KubeStateReader, Transaction
from plugins.controller.config import ControllerConfig, DBWatcherConfig
from plugins.controller.dbwatcher import DBWatcher
from plugins.controller.eventloop import EventLoop
from plugins.controller.events import DBResync, ExternalConfigChange, KubeStateChange
from plugins.controller.kubestate import KSR_PREFIX, ResourceRegistry
from plugins.controller.mirror import LocalMirror
from tests.plugins.controller.helpers import Item, RecordingScheduler, wait_until

NODE = "ctl-test-node"
EXT_PREFIX = f"/vnf-agent/{NODE}/"


class PodObj(BaseModel):
    name: str
    namespace: str
    ip: str = ""


def pod_key(name: str, ns: str = "default") -> str:
    return f"{KSR_PREFIX}k8s/pod/{name}/namespace/{ns}"


def pod_json(name: str, ip: str = "", ns: str = "default") -> bytes:
    return PodObj(name=name, namespace=ns, ip=ip).model_dump_json().encode()


class Watcher(Plugin, EventHandler):
    """Records what the dbwatcher delivered and mirrors pods into desired dataplane values."""

    name = "watcher"

    def __init__(self) -> None:
        super().__init__()
        self.resyncs: list[DBResync] = []
        self.changes: list[KubeStateChange] = []
        self.external: list[ExternalConfigChange] = []
        self.pods: dict[str, Any] = {}

    def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
        if isinstance(event, DBResync):
            self.resyncs.append(event)
        self.pods = dict(kube_state.list("pod"))
        for name, pod in self.pods.items():
            txn.put(f"config/test/v1/item/{name.replace('/', '-')}", Item(name=pod.name))

    def update(self, event: Event, txn: Transaction) -> str | None:
        return None

    def handles_event(self, event: Event) -> bool:
        if any(seen is event for seen in [*self.changes, *self.external]):
            return True  # asked again (whether it may join a batch): recorded once
        if isinstance(event, KubeStateChange):
            self.changes.append(event)
            if event.new_value is None:
                self.pods.pop(event.key, None)
            else:
                self.pods[event.key] = event.new_value
        elif isinstance(event, ExternalConfigChange):
            self.external.append(event)
        return True


class Stack:
    """An event loop, a recording scheduler and a dbwatcher over ``broker``."""

    def __init__(self, broker: KVBroker, mirror_path: Path | None, controller: ControllerConfig | None = None,
                 backpressure: bool = False, **watcher_cfg: Any) -> None:
        self.scheduler = RecordingScheduler()
        self.handler = Watcher()
        self.loop = EventLoop(self.scheduler, [self.handler], controller or ControllerConfig())
        registry = ResourceRegistry()
        registry.register("pod", "k8s/pod/", PodObj)
        self.mirror = LocalMirror(mirror_path) if mirror_path is not None else None
        if self.mirror is not None:
            self.mirror.open()
        cfg = DBWatcherConfig(**{"delay_local_resync_s": 0.3, "remote_db_probing_interval_s": 0.1,
                                 "probe_timeout_s": 1.0, **watcher_cfg})
        self.watcher = DBWatcher(
            broker, NODE, registry,
            lambda key: Item if key.startswith("config/test/v1/item/") else None,
            self.loop.push, cfg, self.mirror, wait_for_room=self.loop.wait_for_room if backpressure else None,
        )

    def start(self) -> None:
        self.loop.start()
        self.watcher.start()

    async def stop(self) -> None:
        await self.watcher.stop()
        await self.loop.stop()
        if self.mirror is not None:
            self.mirror.close()

    @property
    def kube_pods(self) -> dict[str, Any]:
        return dict(self.loop.processor.kube_state.list("pod"))


@pytest.fixture
async def memory() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker()
    yield broker
    await broker.close()


@pytest.fixture
async def etcd_broker(etcd: EtcdServer) -> AsyncIterator[EtcdBroker]:
    broker = EtcdBroker([etcd.endpoint], tls=etcd.client_tls(), dial_timeout_s=3.0, op_timeout_s=2.0)
    await broker.connect()
    yield broker
    await broker.close()


async def test_initial_resync_parses_registered_resources_and_external_config(
    memory: MemoryBroker, tmp_path: Path
) -> None:
    await memory.put(pod_key("web"), pod_json("web", "10.1.1.2"))
    await memory.put(pod_key("broken"), b'{"name": 5}')  # invalid: kept out
    await memory.put(f"{KSR_PREFIX}status/gauges", b"{}")  # not a registered resource
    await memory.put(f"{EXT_PREFIX}config/test/v1/item/ext", Item(name="ext", value=7).model_dump_json().encode())
    stack = Stack(memory, tmp_path / "mirror.sqlite")
    stack.start()
    try:
        await wait_until(lambda: len(stack.handler.resyncs) == 1)
        resync = stack.handler.resyncs[0]
        assert not resync.local
        assert set(resync.kube_state["pod"]) == {"web/namespace/default"}
        assert stack.kube_pods["web/namespace/default"].ip == "10.1.1.2"
        # The first transaction holds the handler's value and the operator's external value.
        await wait_until(lambda: len(stack.scheduler.commits) == 1)
        first = stack.scheduler.commits[0]
        assert set(first.changes) == {"config/test/v1/item/web-namespace-default", "config/test/v1/item/ext"}
        assert first.changes["config/test/v1/item/ext"] == Item(name="ext", value=7)
        # Everything read was mirrored, invalid values included (the mirror is raw).
        assert stack.mirror is not None
        mirrored, revision = stack.mirror.load()
        assert {kv.key for kv in mirrored} == {
            pod_key("web"), pod_key("broken"), f"{KSR_PREFIX}status/gauges",
            f"{EXT_PREFIX}config/test/v1/item/ext",
        }
        assert revision == await memory.revision()
    finally:
        await stack.stop()


async def test_changes_become_events_and_update_the_cache_and_mirror(
    memory: MemoryBroker, tmp_path: Path
) -> None:
    stack = Stack(memory, tmp_path / "mirror.sqlite")
    stack.start()
    try:
        await wait_until(lambda: len(stack.handler.resyncs) == 1)
        await memory.put(pod_key("a"), pod_json("a", "10.1.1.3"))
        await memory.put(pod_key("a"), pod_json("a", "10.1.1.4"))
        await memory.put(pod_key("a"), b"not json")  # invalid update: the pod is gone to handlers
        await memory.put(pod_key("b"), pod_json("b"))
        await memory.delete(pod_key("b"))
        await memory.put(f"{EXT_PREFIX}config/test/v1/item/b", Item(name="b", extra="ops").model_dump_json().encode())
        await wait_until(lambda: len(stack.handler.external) == 1)
        kinds = [(c.key, c.prev_value is not None, c.new_value is not None) for c in stack.handler.changes]
        assert kinds == [
            ("a/namespace/default", False, True),
            ("a/namespace/default", True, True),
            ("a/namespace/default", True, False),
            ("b/namespace/default", False, True),
            ("b/namespace/default", True, False),
        ]
        assert stack.handler.changes[1].prev_value.ip == "10.1.1.3"  # type: ignore[union-attr]
        assert stack.kube_pods == {}
        await wait_until(lambda: len(stack.scheduler.commits) == 2)
        assert stack.scheduler.commits[-1].changes == {"config/test/v1/item/b": Item(name="b", extra="ops")}
        assert stack.mirror is not None
        await wait_until(lambda: len(stack.mirror.load()[0]) == 2)  # type: ignore[union-attr]
        mirrored = {kv.key: kv.value for kv in stack.mirror.load()[0]}
        assert mirrored[pod_key("a")] == b"not json"
    finally:
        await stack.stop()


async def test_requested_resync_does_not_duplicate_changes(memory: MemoryBroker, tmp_path: Path) -> None:
    stack = Stack(memory, tmp_path / "mirror.sqlite")
    stack.start()
    try:
        await wait_until(lambda: len(stack.handler.resyncs) == 1)
        for i in range(30):
            await memory.put(pod_key(f"p{i}"), pod_json(f"p{i}"))
            if i == 15:
                stack.watcher.request_resync()
        await wait_until(lambda: len(stack.kube_pods) == 30)
        await wait_until(lambda: len(stack.handler.resyncs) == 2)
        revisions = [c.revision for c in stack.handler.changes]
        assert len(revisions) == len(set(revisions))
        assert stack.watcher.remote_resyncs == 2
    finally:
        await stack.stop()


@pytest.mark.etcd
async def test_etcd_restart_mid_stream_loses_and_duplicates_no_change(
    etcd: EtcdServer, etcd_broker: EtcdBroker, tmp_path: Path
) -> None:
    stack = Stack(etcd_broker, tmp_path / "mirror.sqlite")
    stack.start()
    written: dict[str, str] = {}
    try:
        await wait_until(lambda: len(stack.handler.resyncs) == 1)

        async def write(i: int) -> None:
            name, ip = f"p{i % 10}", f"10.1.{i}.2"
            while True:
                try:
                    await etcd_broker.put(pod_key(name), pod_json(name, ip))
                    written[f"{name}/namespace/default"] = ip
                    return
                except KVError:
                    await asyncio.sleep(0.05)

        for i in range(40):
            await write(i)
            if i == 20:
                await asyncio.to_thread(etcd.stop)
                await wait_until(lambda: not stack.watcher.connected)  # the probe noticed
                await asyncio.to_thread(etcd.start)
        await wait_until(lambda: {k: v.ip for k, v in stack.kube_pods.items()} == written, timeout_s=20)
        # The handler's own view, built from resyncs and change events, matches etcd.
        assert {k: v.ip for k, v in stack.handler.pods.items()} == written
        # The start, and once when etcd came back (more when a loaded machine made a probe of the
        # restarted etcd time out: each is a full resync, and no change is lost or doubled).
        assert stack.watcher.remote_resyncs >= 2
        seen = [(c.key, c.revision) for c in stack.handler.changes]
        assert len(seen) == len(set(seen)), "a change was delivered twice"
        per_key: dict[str, int] = {}
        for key, revision in seen:
            assert revision > per_key.get(key, 0), f"{key} went back to revision {revision}"
            per_key[key] = revision
    finally:
        await stack.stop()


@pytest.mark.etcd
async def test_start_with_etcd_down_resyncs_from_the_mirror_then_converges(
    etcd: EtcdServer, etcd_broker: EtcdBroker, tmp_path: Path
) -> None:
    mirror_path = tmp_path / "mirror.sqlite"
    await etcd_broker.put(pod_key("old"), pod_json("old", "10.1.1.5"))
    first = Stack(etcd_broker, mirror_path)
    first.start()
    try:
        await wait_until(lambda: len(first.handler.resyncs) == 1)
    finally:
        await first.stop()
    # While the agent is away the cluster changes, then etcd goes down.
    await etcd_broker.put(pod_key("new"), pod_json("new", "10.1.1.6"))
    await asyncio.to_thread(etcd.stop)
    broker = EtcdBroker([etcd.endpoint], tls=etcd.client_tls(), dial_timeout_s=0.3, op_timeout_s=0.5)
    with pytest.raises(KVError):
        await broker.connect()
    second = Stack(broker, mirror_path)
    second.start()
    try:
        await wait_until(lambda: len(second.handler.resyncs) == 1)
        local = second.handler.resyncs[0]
        assert local.local and set(local.kube_state["pod"]) == {"old/namespace/default"}
        assert second.scheduler.commits[0].changes.keys() == {"config/test/v1/item/old-namespace-default"}
        await asyncio.to_thread(etcd.start)
        await wait_until(lambda: len(second.handler.resyncs) == 2, timeout_s=20)
        remote = second.handler.resyncs[1]
        assert not remote.local
        assert set(second.kube_pods) == {"old/namespace/default", "new/namespace/default"}
        assert set(second.scheduler.desired()) == {
            "config/test/v1/item/old-namespace-default", "config/test/v1/item/new-namespace-default",
        }
        # And it keeps watching.
        await broker.delete(pod_key("old"))
        await wait_until(lambda: set(second.kube_pods) == {"new/namespace/default"})
    finally:
        await second.stop()
        await broker.close()


async def test_stop_right_after_a_wake_up_stops(memory: MemoryBroker) -> None:
    """Python 3.11's ``asyncio.wait_for`` loses a cancellation that arrives in the same loop
    iteration as the result of what it waits for: the watcher's loop, woken (a resync request,
    a watch's repair) just as the agent stopped it, ran on and ``stop()`` waited for ever."""
    stack = Stack(memory, None, remote_db_probing_interval_s=60.0)
    stack.start()
    try:
        await wait_until(lambda: len(stack.handler.resyncs) == 1)
        for _ in range(3):  # the loop waits to be woken now (probes are a minute apart)
            await asyncio.sleep(0)
        stack.watcher.request_resync()
        try:
            async with asyncio.timeout(30):
                await stack.watcher.stop()
        except TimeoutError:
            pytest.fail("DBWatcher.stop() did not return: the cancellation was lost")
    finally:
        await stack.loop.stop()



class GatedScheduler(RecordingScheduler):
    """Commits wait for ``gate``: while it is closed the loop is stuck in one transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def commit(self, changes: Any, **kwargs: Any) -> Any:
        await self.gate.wait()
        return await super().commit(changes, **kwargs)


class ChangeWriter(Watcher):
    """Writes one value per pod change, so every change is a transaction."""

    def update(self, event: Event, txn: Transaction) -> str | None:
        if isinstance(event, KubeStateChange):
            txn.put(f"config/test/v1/item/{event.key.replace('/', '-')}", Item(name=event.key))
        return None


@pytest.mark.parametrize("backpressure", [True, False])
async def test_a_burst_waits_for_room_instead_of_overflowing_into_resyncs(
    memory: MemoryBroker, backpressure: bool
) -> None:
    """A queue of 5 and 40 changes while the loop is stuck in a transaction: with backpressure
    the watch waits for room, every change arrives once and in order, nothing is rejected and no
    resync is made. Without it (the control) the overflow costs resyncs, each listing and parsing
    every key again: on a real cluster, thousands of Services created at once grew the agent
    past its memory limit that way."""
    stack = Stack(memory, None, controller=ControllerConfig(event_queue_size=5), backpressure=backpressure)
    stack.scheduler = GatedScheduler()
    stack.handler = ChangeWriter()
    stack.loop = EventLoop(stack.scheduler, [stack.handler], ControllerConfig(event_queue_size=5))
    stack.watcher.push = stack.loop.push
    if backpressure:
        stack.watcher.wait_for_room = stack.loop.wait_for_room
    stack.start()
    try:
        await wait_until(lambda: len(stack.handler.resyncs) == 1)
        stack.scheduler.gate.clear()
        await memory.put(pod_key("first"), pod_json("first"))
        await wait_until(lambda: len(stack.handler.changes) == 1)  # the loop now waits in its commit
        for i in range(40):
            await memory.put(pod_key(f"p{i}"), pod_json(f"p{i}"))
        if backpressure:
            await wait_until(lambda: stack.loop.queue_depth() == 5)
        else:
            await wait_until(lambda: stack.loop.metrics.rejected._value.get() > 0)  # type: ignore[attr-defined]
        stack.scheduler.gate.set()
        await wait_until(lambda: len(stack.kube_pods) == 41)
        rejected = stack.loop.metrics.rejected._value.get()  # type: ignore[attr-defined]
        if backpressure:
            keys = [c.key for c in stack.handler.changes]
            assert keys == ["first/namespace/default", *[f"p{i}/namespace/default" for i in range(40)]]
            assert stack.watcher.remote_resyncs == 1 and len(stack.handler.resyncs) == 1 and rejected == 0
        else:
            await wait_until(lambda: stack.watcher.remote_resyncs >= 2)
            assert rejected > 0
    finally:
        await stack.stop()
