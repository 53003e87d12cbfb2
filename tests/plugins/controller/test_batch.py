"""Independent pod events queued together: one handler pass each, one commit (batch.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plugins.controller.api import Event, EventHandler, Transaction, UpdateTxnType
from plugins.controller.config import ControllerConfig
from plugins.controller.eventloop import EventLoop
from tests.plugins.controller.helpers import (
    FullResync,
    Item,
    RecordingScheduler,
    key_of,
    wait_until,
)


class PodEvent(Event):
    """Stands for AddPod: blocking, revert-on-failure, batchable by pod."""

    name = "Pod Event"
    blocking = True
    txn_type = UpdateTxnType.REVERT_ON_FAILURE

    def __init__(self, pod: str) -> None:
        super().__init__()
        self.pod = pod

    def describe(self) -> str:
        return f"Pod Event {self.pod}"

    def batch_key(self) -> object | None:
        return self.pod


class PodHandler(EventHandler):
    """Puts one value per pod; ``bad`` fails in ``update``; keeps per-pod state."""

    supports_batching = True
    name = "pods"

    def __init__(self, bad: str = "") -> None:
        self.bad = bad
        self.pods: dict[str, int] = {}
        self.reverted: list[str] = []

    def handles_event(self, event: Event) -> bool:
        return True

    def update(self, event: Event, txn: Transaction) -> str | None:
        pod = getattr(event, "pod", None)
        if pod is None:
            return None
        if pod == self.bad:
            raise RuntimeError(f"cannot wire {pod}")
        self.pods[pod] = self.pods.get(pod, 0) + 1
        txn.put(key_of(pod), Item(name=pod, value=self.pods[pod]))
        return f"wired {pod}"

    def revert(self, event: Event) -> None:
        pod = getattr(event, "pod", "")
        self.reverted.append(pod)
        self.pods[pod] -= 1
        if not self.pods[pod]:
            del self.pods[pod]


class LegacyHandler(PodHandler):
    supports_batching = False
    name = "legacy"


@pytest.fixture
async def loops() -> AsyncIterator[list[EventLoop]]:
    made: list[EventLoop] = []
    yield made
    for loop in made:
        await loop.stop()


async def started(made: list[EventLoop], handlers: list[EventHandler],
                  sched: RecordingScheduler) -> EventLoop:
    loop = EventLoop(sched, handlers, ControllerConfig())
    loop.start()
    made.append(loop)
    loop.push(FullResync())
    await wait_until(lambda: loop.started, 60)
    return loop


async def push_all(loop: EventLoop, events: list[PodEvent]) -> list[BaseException | None]:
    for event in events:  # queued together: the loop runs only when this task awaits
        loop.push(event)
    outcomes: list[BaseException | None] = []
    for event in events:
        try:
            await event.wait()
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


async def test_independent_events_share_one_commit(loops: list[EventLoop]) -> None:
    sched = RecordingScheduler()
    handler = PodHandler()
    loop = await started(loops, [handler], sched)
    events = [PodEvent(f"p{i}") for i in range(10)]
    assert await push_all(loop, events) == [None] * 10
    nb = [c for c in sched.commits if c.resync is None]
    assert len(nb) == 1 and set(nb[0].changes) == {key_of(f"p{i}") for i in range(10)}
    assert nb[0].revert_on_failure
    records = [r for r in loop.history_records() if r.name == "Pod Event"]
    assert len(records) == 10  # one record (and outcome) per event
    assert len({r.txn["seq"] for r in records if r.txn}) == 1
    assert "in a batch of 10" in records[5].description


async def test_same_pod_events_keep_their_order_and_are_never_batched(
    loops: list[EventLoop]
) -> None:
    sched = RecordingScheduler()
    handler = PodHandler()
    loop = await started(loops, [handler], sched)
    events = [PodEvent("x"), PodEvent("a"), PodEvent("b"), PodEvent("a"), PodEvent("c")]
    assert await push_all(loop, events) == [None] * 5
    nb = [set(c.changes) for c in sched.commits if c.resync is None]
    # x, a, b (the second a ends the batch); then a, c.
    assert nb == [{key_of("x"), key_of("a"), key_of("b")}, {key_of("a"), key_of("c")}]
    assert handler.pods["a"] == 2


async def test_a_failing_handler_fails_its_event_alone(loops: list[EventLoop]) -> None:
    sched = RecordingScheduler()
    handler = PodHandler(bad="p3")
    loop = await started(loops, [handler], sched)
    outcomes = await push_all(loop, [PodEvent(f"p{i}") for i in range(6)])
    assert [o is None for o in outcomes] == [True, True, True, False, True, True]
    assert "cannot wire p3" in str(outcomes[3])
    assert handler.reverted == ["p3"] and "p3" not in handler.pods
    assert key_of("p3") not in sched.desired() and key_of("p5") in sched.desired()


async def test_a_failed_batch_commit_is_reverted_and_each_event_retried_alone(
    loops: list[EventLoop]
) -> None:
    sched = RecordingScheduler(fail_keys={key_of("p4")})
    handler = PodHandler()
    loop = await started(loops, [handler], sched)
    outcomes = await push_all(loop, [PodEvent(f"p{i}") for i in range(6)])
    assert [o is None for o in outcomes] == [True, True, True, True, False, True]
    # Every member of the failed batch was reverted, then processed with its own transaction.
    assert sorted(handler.reverted) == ["p0", "p1", "p2", "p3", "p4", "p4", "p5"]
    alone = [c for c in sched.commits if c.resync is None][1:]
    assert [set(c.changes) for c in alone] == [{key_of(f"p{i}")} for i in range(6)]
    assert set(handler.pods) == {"p0", "p1", "p2", "p3", "p5"}
    assert key_of("p4") not in sched.desired() and key_of("p5") in sched.desired()
    records = [r for r in loop.history_records() if r.name == "Pod Event"]
    assert "alone, after a failed batch" in records[4].description and records[4].error


async def test_a_handler_without_batching_support_sees_one_event_at_a_time(
    loops: list[EventLoop]
) -> None:
    sched = RecordingScheduler()
    loop = await started(loops, [PodHandler(), LegacyHandler()], sched)
    assert await push_all(loop, [PodEvent(f"p{i}") for i in range(5)]) == [None] * 5
    assert len([c for c in sched.commits if c.resync is None]) == 5
