"""Test doubles for the controller: a recording scheduler and handler plugins that log calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from core.plugin import Plugin
from plugins.controller.api import (
    Direction,
    Event,
    EventHandler,
    EventMethod,
    KubeStateReader,
    Transaction,
    UpdateTxnType,
)
from plugins.controller.eventloop import EventLoop
from plugins.kvscheduler.api import Descriptor, ResyncMode, TxnKind, TxnResult, ValueState, ValueStatus


class Item(BaseModel):
    """A dataplane value for tests."""

    name: str
    value: int = 0
    extra: str = ""


def key_of(name: str) -> str:
    return f"config/test/v1/item/{name}"


@dataclass
class Commit:
    changes: dict[str, BaseModel | None]
    resync: ResyncMode | None
    revert_on_failure: bool
    description: str


@dataclass
class RecordingScheduler:
    """Satisfies KVSchedulerAPI: records every commit, keeps the desired state, fails chosen keys."""

    commits: list[Commit] = field(default_factory=list)
    fail_keys: set[str] = field(default_factory=set)
    #: While set, every commit fails on every key it touches (or on a sentinel for empty ones).
    fail_all: bool = False
    _desired: dict[str, BaseModel] = field(default_factory=dict)
    registered: list[Descriptor[Any]] = field(default_factory=list)

    def register_descriptor(self, descriptor: Descriptor[Any]) -> None:
        self.registered.append(descriptor)

    def descriptors(self) -> list[Descriptor[Any]]:
        return list(self.registered)

    async def commit(
        self,
        changes: Mapping[str, BaseModel | None],
        *,
        resync: ResyncMode | None = None,
        revert_on_failure: bool = False,
        description: str = "",
    ) -> TxnResult:
        self.commits.append(Commit(dict(changes), resync, revert_on_failure, description))
        errors = {k: "injected failure" for k in changes if k in self.fail_keys}
        if self.fail_all:
            errors = {k: "injected failure" for k in changes} or {"*": "injected failure"}
        before = dict(self._desired)
        if resync in (ResyncMode.FULL, ResyncMode.UPSTREAM):
            self._desired = {k: v for k, v in changes.items() if v is not None}
        elif resync is None:
            for k, v in changes.items():
                if v is None:
                    self._desired.pop(k, None)
                else:
                    self._desired[k] = v
        reverted = bool(errors) and revert_on_failure
        if reverted:
            self._desired = before
        return TxnResult(
            seq=len(self.commits),
            kind=TxnKind.RESYNC if resync is not None else TxnKind.NB,
            resync=resync,
            description=description,
            errors=errors,
            reverted=reverted,
        )

    def value_status(self, key: str) -> ValueStatus:
        state = ValueState.CONFIGURED if key in self._desired else ValueState.NONEXISTENT
        return ValueStatus(key=key, state=state)

    def desired(self) -> Mapping[str, BaseModel]:
        return dict(self._desired)

    def metadata(self, descriptor: str) -> Mapping[str, Any]:
        return {}


class Ping(Event):
    """A plain best-effort update event."""

    name = "Ping"

    def __init__(self, tag: str = "", *, blocking: bool = False, txn_type: UpdateTxnType | None = None,
                 direction: Direction | None = None) -> None:
        self.blocking = blocking
        if txn_type is not None:
            self.txn_type = txn_type
        if direction is not None:
            self.direction = direction
        super().__init__()
        self.tag = tag

    def describe(self) -> str:
        return f"Ping {self.tag}"


class FullResync(Event):
    name = "Test Resync"
    method = EventMethod.FULL_RESYNC


CallLog = list[tuple[str, str, str]]


class RecordingHandler(Plugin, EventHandler):
    """Logs (handler, hook, event tag) and puts ``Item(name=<handler>, value=<n>)`` per update.

    ``fail`` maps an event tag to the exception ``update`` raises for it; ``on_update`` runs
    extra behaviour (e.g. pushing a follow-up or amending another handler's value).
    """

    name = "recording"

    def __init__(self, calls: CallLog, *, fail: Mapping[str, BaseException] | None = None,
                 on_update: Callable[[Event, Transaction], None] | None = None) -> None:
        super().__init__()
        self.calls = calls
        self.fail = dict(fail or {})
        self.on_update = on_update
        self.updates = 0
        self.reverted: list[str] = []

    def handles_event(self, event: Event) -> bool:
        return True

    def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
        self.calls.append((self.name, "resync", event.name))
        txn.put(key_of(self.name), Item(name=self.name, value=resync_count))

    def update(self, event: Event, txn: Transaction) -> str | None:
        tag = getattr(event, "tag", event.name)
        self.calls.append((self.name, "update", tag))
        if self.on_update is not None:
            self.on_update(event, txn)
        if tag in self.fail:
            raise self.fail[tag]
        self.updates += 1
        txn.put(key_of(self.name), Item(name=self.name, value=self.updates))
        return f"{self.name} #{self.updates}"

    def revert(self, event: Event) -> None:
        self.calls.append((self.name, "revert", getattr(event, "tag", event.name)))
        self.updates -= 1

    def describe_internal_state(self) -> dict[str, object]:
        return {"updates": self.updates}


def make_handler(name: str, calls: CallLog, **kwargs: Any) -> RecordingHandler:
    """A RecordingHandler subclass instance with its own plugin name."""
    cls = type(f"Handler_{name.replace('-', '_')}", (RecordingHandler,), {"name": name})
    return cls(calls, **kwargs)  # type: ignore[no-any-return]


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` until true; fails the test with a clear message on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.01)


class HealthRecordingLoop(EventLoop):
    """An event loop that keeps every health report it made."""

    health_log: list[tuple[bool, str]]


Factory = Callable[..., HealthRecordingLoop]


async def started(loop: EventLoop) -> None:
    loop.push(FullResync())
    await wait_until(lambda: loop.started)
