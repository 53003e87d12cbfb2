"""The event loop: ordering, follow-ups, blocking outcomes, errors, healing, startup rules."""

from __future__ import annotations

import asyncio
import gc

import pytest

from core import tuning
from core.plugin import Plugin
from plugins.controller.api import (
    Direction,
    Event,
    EventHandler,
    KubeStateReader,
    Transaction,
    UpdateTxnType,
)
from plugins.controller.errors import (
    DeadlockError,
    EventQueueFullError,
    TransactionFailedError,
)
from plugins.controller.eventloop import EventLoop
from plugins.kvscheduler.api import ResyncMode
from tests.plugins.controller.helpers import (
    CallLog,
    Factory,
    FullResync,
    Item,
    Ping,
    RecordingScheduler,
    key_of,
    make_handler,
    started,
    wait_until,
)


async def test_handlers_run_in_declared_order_and_reversed_for_reverse_events(make_loop: Factory) -> None:
    calls: CallLog = []
    sched = RecordingScheduler()
    loop = make_loop([make_handler(n, calls) for n in ("a", "b", "c")], sched)
    await started(loop)
    forward = Ping("f", blocking=True)
    loop.push(forward)
    await forward.wait()
    reverse = Ping("r", blocking=True, direction=Direction.REVERSE)
    loop.push(reverse)
    await reverse.wait()
    assert calls == [
        ("a", "resync", "Test Resync"), ("b", "resync", "Test Resync"), ("c", "resync", "Test Resync"),
        ("a", "update", "f"), ("b", "update", "f"), ("c", "update", "f"),
        ("c", "update", "r"), ("b", "update", "r"), ("a", "update", "r"),
    ]
    # Exactly one scheduler transaction per event, resync with the complete desired state.
    assert len(sched.commits) == 3
    assert sched.commits[0].resync is ResyncMode.FULL
    assert set(sched.commits[0].changes) == {key_of("a"), key_of("b"), key_of("c")}
    assert sched.commits[1].resync is None and len(sched.commits[1].changes) == 3
    assert [r.seq for r in loop.history_records()] == [0, 1, 2]


async def test_follow_up_events_jump_the_queue(make_loop: Factory) -> None:
    calls: CallLog = []
    sched = RecordingScheduler()
    pushed: list[EventLoop] = []

    def push_follow_up(event: Event, txn: Transaction) -> None:
        if getattr(event, "tag", "") == "first":
            pushed[0].push(Ping("follow-up"))

    loop = make_loop([make_handler("a", calls, on_update=push_follow_up)], sched)
    pushed.append(loop)
    await started(loop)
    # Queued back to back: the follow-up pushed while processing "first" competes with them.
    for tag in ("first", "second", "third"):
        loop.push(Ping(tag))
    last = Ping("last", blocking=True)
    loop.push(last)
    await last.wait()
    tags = [c[2] for c in calls if c[1] == "update"]
    assert tags == ["first", "follow-up", "second", "third", "last"]
    follow = next(r for r in loop.history_records() if r.description == "Ping follow-up")
    first = next(r for r in loop.history_records() if r.description == "Ping first")
    assert follow.follow_up_of == first.seq


async def test_blocking_events_return_their_outcome(make_loop: Factory) -> None:
    calls: CallLog = []
    sched = RecordingScheduler()
    loop = make_loop([make_handler("a", calls, fail={"bad": ValueError("boom")})], sched,
                     delay_after_error_healing_s=60)
    await started(loop)
    ok = Ping("good", blocking=True)
    loop.push(ok)
    await ok.wait()
    bad = Ping("bad", blocking=True)
    loop.push(bad)
    with pytest.raises(ValueError, match="boom"):
        await bad.wait()
    sched.fail_keys.add(key_of("a"))
    txn_fail = Ping("txn", blocking=True)
    loop.push(txn_fail)
    with pytest.raises(TransactionFailedError, match="injected failure"):
        await txn_fail.wait()
    ignored = Ping("bad", blocking=True, txn_type=UpdateTxnType.BEST_EFFORT_IGNORE_ERRORS)
    loop.push(ignored)
    await ignored.wait()  # errors of ignore-errors events are only logged


async def test_full_queue_is_an_error_to_the_producer(make_loop: Factory) -> None:
    sched = RecordingScheduler()
    loop = make_loop([make_handler("a", [])], sched, event_queue_size=3)
    # Not started: the loop holds updates until the first resync, and held ones count.
    for tag in ("1", "2", "3"):
        loop.push(Ping(tag))
    await asyncio.sleep(0.01)  # the loop moves them to the held list
    with pytest.raises(EventQueueFullError, match="event queue full"):
        loop.push(Ping("4"))
    await started(loop)
    await wait_until(lambda: len(sched.commits) == 4)


async def test_waiting_for_room_counts_as_push_does(make_loop: Factory) -> None:
    """Held updates fill the queue before the first resync: an update producer waits, a resync
    producer does not (the resync is what releases them), and the update producer goes on once
    the loop has started and drained them."""
    sched = RecordingScheduler()
    loop = make_loop([make_handler("a", [])], sched, event_queue_size=3)
    for tag in ("1", "2", "3"):
        loop.push(Ping(tag))
    await wait_until(lambda: loop.queue_depth() == 3)
    update_waiter = asyncio.ensure_future(loop.wait_for_room())
    async with asyncio.timeout(10):
        await loop.wait_for_room(resync=True)  # at once: held updates never keep a resync out
    assert not update_waiter.done()
    await started(loop)
    async with asyncio.timeout(10):
        await update_waiter
    assert loop.queue_depth() < 3


async def test_blocking_follow_up_is_refused(make_loop: Factory) -> None:
    errors: list[BaseException] = []
    holder: list[EventLoop] = []

    def push_blocking(event: Event, txn: Transaction) -> None:
        try:
            holder[0].push(Ping("inner", blocking=True))
        except DeadlockError as exc:
            errors.append(exc)

    loop = make_loop([make_handler("a", [], on_update=push_blocking)], RecordingScheduler())
    holder.append(loop)
    await started(loop)
    ev = Ping("outer", blocking=True)
    loop.push(ev)
    await ev.wait()
    assert len(errors) == 1 and "inside the event loop" in str(errors[0])


async def test_a_handler_amends_what_an_earlier_one_put(make_loop: Factory) -> None:
    sched = RecordingScheduler()

    def amend(event: Event, txn: Transaction) -> None:
        if getattr(event, "tag", "") == "amend":
            earlier = txn.get(key_of("a"))
            assert isinstance(earlier, Item)
            txn.put(key_of("a"), earlier.model_copy(update={"extra": "amended by b"}))

    loop = make_loop([make_handler("a", []), make_handler("b", [], on_update=amend)], sched)
    await started(loop)
    ev = Ping("amend", blocking=True)
    loop.push(ev)
    await ev.wait()
    committed = sched.commits[-1].changes[key_of("a")]
    assert isinstance(committed, Item) and committed.extra == "amended by b"


async def test_periodic_healing_is_a_downstream_resync(make_loop: Factory) -> None:
    calls: CallLog = []
    sched = RecordingScheduler()
    loop = make_loop([make_handler("a", calls)], sched, enable_periodic_healing=True,
                     periodic_healing_interval_s=0.05)
    await started(loop)
    await wait_until(lambda: any(c.resync is ResyncMode.DOWNSTREAM for c in sched.commits))
    downstream = next(c for c in sched.commits if c.resync is ResyncMode.DOWNSTREAM)
    assert downstream.changes == {}
    assert calls == [("a", "resync", "Test Resync")]  # downstream resyncs call no handler


async def test_a_handler_gets_the_resync_count(make_loop: Factory) -> None:
    seen: list[int] = []

    class Minimal(Plugin, EventHandler):
        name = "minimal"

        def handles_event(self, event: Event) -> bool:
            return True

        def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
            seen.append(resync_count)

    loop = make_loop([Minimal()], RecordingScheduler())
    await started(loop)
    loop.push(FullResync())
    await wait_until(lambda: len(seen) == 2)
    assert seen == [1, 2]


class Consistent(Plugin, EventHandler):
    """Resync and update agree: one value per name seen; ``drift`` breaks that on purpose."""

    name = "consistent"

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.drift = False

    def handles_event(self, event: Event) -> bool:
        return True

    def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
        for name in self.names:
            txn.put(key_of(name), Item(name=name))

    def update(self, event: Event, txn: Transaction) -> str:
        tag = getattr(event, "tag", "")
        self.names.add(tag)
        txn.put(key_of(tag), Item(name=tag, extra="drift" if self.drift else ""))
        return f"added {tag}"

    def describe_internal_state(self) -> dict[str, object]:
        return {"names": sorted(self.names)}


async def test_verification_resync_reports_only_real_differences(make_loop: Factory) -> None:
    handler = Consistent()
    sched = RecordingScheduler()
    loop = make_loop([handler], sched, enable_verification=True)
    await started(loop)
    ok = Ping("a", blocking=True)
    loop.push(ok)
    await ok.wait()
    await wait_until(lambda: len(loop.history_records()) == 4)  # resync, verify, update, verify
    records = loop.history_records()
    assert [r.name for r in records] == ["Test Resync", "Verification Resync", "Ping", "Verification Resync"]
    assert records[3].follow_up_of == records[2].seq
    assert not any(r.error for r in records)
    commits = len(sched.commits)
    handler.drift = True
    bad = Ping("b", blocking=True)
    loop.push(bad)
    await bad.wait()  # the event itself succeeded
    await wait_until(lambda: len(loop.history_records()) == 6)
    verification = loop.history_records()[-1]
    assert "config/test/v1/item/b differs" in verification.error
    assert len(sched.commits) == commits + 1  # verification resyncs are never committed
    assert loop.describe_handlers() == {"consistent": {"names": ["a", "b"]}}


async def test_handlers_run_with_automatic_collection_paused_and_it_comes_back(
    make_loop: Factory, request: pytest.FixtureRequest,
) -> None:
    """A resync builds a whole desired state in one synchronous stretch: the collector would
    only rescan what all survives (at 10k services, ~40% of the processor's time)."""
    seen: list[bool] = []

    class GcNoting(Plugin, EventHandler):
        name = "gc-noting"

        def handles_event(self, event: Event) -> bool:
            return True

        def resync(self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction) -> None:
            seen.append(gc.isenabled())

        def update(self, event: Event, txn: Transaction) -> str | None:
            seen.append(gc.isenabled())
            return None

    assert gc.isenabled()
    tuning.configure(tuning.ProcessTuning(gc_pause=True))  # the agent's policy (apps/vswitch/process.py)
    request.addfinalizer(lambda: tuning.configure(tuning.ProcessTuning()))
    loop = make_loop([GcNoting()], RecordingScheduler())
    await started(loop)
    ping = Ping("p", blocking=True)
    loop.push(ping)
    await ping.wait()
    assert seen == [False, False]
    assert gc.isenabled()
