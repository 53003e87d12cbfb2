"""The event loop when things fail: reverts, healing resyncs, aborts and the startup deadline."""

from __future__ import annotations

import asyncio

import pytest

from plugins.controller.api import (
    AbortEventError,
    FatalError,
    UpdateTxnType,
)
from plugins.controller.errors import (
    EventLoopAbortingError,
    TransactionFailedError,
)
from plugins.controller.events import HealingResync
from plugins.kvscheduler.api import ResyncMode
from tests.plugins.controller.helpers import (
    CallLog,
    Factory,
    FullResync,
    Ping,
    RecordingScheduler,
    key_of,
    make_handler,
    started,
    wait_until,
)


async def test_revert_on_failure_reverts_handlers_in_reverse(make_loop: Factory) -> None:
    calls: CallLog = []
    sched = RecordingScheduler()
    handlers = [
        make_handler("a", calls),
        make_handler("b", calls),
        make_handler("c", calls, fail={"add": RuntimeError("no IP left")}),
        make_handler("d", calls),
    ]
    loop = make_loop(handlers, sched, delay_after_error_healing_s=60)
    await started(loop)
    commits_before = len(sched.commits)
    ev = Ping("add", blocking=True, txn_type=UpdateTxnType.REVERT_ON_FAILURE)
    loop.push(ev)
    with pytest.raises(RuntimeError, match="no IP left"):
        await ev.wait()
    updates = [(h, hook) for h, hook, tag in calls if tag == "add"]
    assert updates == [("a", "update"), ("b", "update"), ("c", "update"),
                       ("c", "revert"), ("b", "revert"), ("a", "revert")]
    assert len(sched.commits) == commits_before  # nothing committed
    # A transaction failure reverts every handler (the scheduler reverted the values).
    calls.clear()
    sched.fail_keys.add(key_of("d"))
    ev2 = Ping("add2", blocking=True, txn_type=UpdateTxnType.REVERT_ON_FAILURE)
    loop.push(ev2)
    with pytest.raises(TransactionFailedError):
        await ev2.wait()
    assert sched.commits[-1].revert_on_failure is True
    assert [h for h, hook, _ in calls if hook == "revert"] == ["d", "c", "b", "a"]
    record = loop.history_records()[-1]
    assert all(h.reverted for h in record.handlers)


async def test_failing_handler_triggers_exactly_one_healing_resync(make_loop: Factory) -> None:
    calls: CallLog = []
    sched = RecordingScheduler()
    loop = make_loop(
        [make_handler("a", calls, fail={"x": ValueError("x"), "y": ValueError("y")}), make_handler("b", calls)],
        sched,
        delay_after_error_healing_s=0.2,
    )
    await started(loop)
    for tag in ("x", "y"):
        loop.push(Ping(tag))
    await wait_until(lambda: any(r.name == HealingResync.name for r in loop.history_records()))
    await asyncio.sleep(0.4)  # longer than the healing delay: a second healing would show up
    records = loop.history_records()
    healing = [r for r in records if r.name == HealingResync.name]
    assert len(healing) == 1
    assert healing[0].method == "full-resync" and not healing[0].error
    # Best effort: b still ran for the failed events, and the failure scheduled the healing.
    assert ("b", "update", "x") in calls and ("b", "update", "y") in calls
    assert [r.healing_scheduled for r in records if r.description in ("Ping x", "Ping y")] == [True, False]
    assert sched.commits[-1].resync is ResyncMode.FULL
    assert loop.ready


async def test_failed_healing_marks_not_ready(make_loop: Factory) -> None:
    sched = RecordingScheduler()
    loop = make_loop([make_handler("a", [], fail={"x": ValueError("x")})], sched,
                     delay_after_error_healing_s=0.05)
    await started(loop)
    assert loop.ready
    sched.fail_all = True
    loop.push(Ping("x"))
    await wait_until(lambda: any(r.name == HealingResync.name for r in loop.history_records()))
    assert not loop.ready
    assert "healing resync" in loop.health_log[-1][1]
    # An operator-triggered resync that succeeds makes the agent ready again.
    sched.fail_all = False
    loop.push(FullResync())
    await wait_until(lambda: loop.ready)


async def test_abort_stops_the_event_and_fatal_aborts_the_loop(make_loop: Factory) -> None:
    calls: CallLog = []
    sched = RecordingScheduler()
    loop = make_loop(
        [make_handler("a", calls, fail={"abort": AbortEventError("stop"), "fatal": FatalError("dead")}),
         make_handler("b", calls)],
        sched,
        delay_after_error_healing_s=60,
    )
    await started(loop)
    n = len(sched.commits)
    ev = Ping("abort", blocking=True)
    loop.push(ev)
    with pytest.raises(AbortEventError):
        await ev.wait()
    assert ("b", "update", "abort") not in calls and len(sched.commits) == n
    assert loop.healing_scheduled
    fatal = Ping("fatal", blocking=True)
    loop.push(fatal)
    with pytest.raises(FatalError):
        await fatal.wait()
    assert not loop.ready
    after = Ping("after", blocking=True)
    loop.push(after)
    with pytest.raises(EventLoopAbortingError, match="fatal error"):
        await after.wait()


async def test_events_wait_for_the_first_resync(make_loop: Factory) -> None:
    calls: CallLog = []
    loop = make_loop([make_handler("a", calls)], RecordingScheduler())
    early = Ping("early", blocking=True)
    loop.push(early)
    await asyncio.sleep(0.05)
    assert calls == [] and not loop.ready
    loop.push(FullResync())
    await early.wait()
    assert calls == [("a", "resync", "Test Resync"), ("a", "update", "early")]
    assert loop.ready


async def test_no_resync_before_the_deadline_means_not_ready(make_loop: Factory) -> None:
    loop = make_loop([make_handler("a", [])], RecordingScheduler(), startup_resync_deadline_s=0.1)
    early = Ping("early", blocking=True)
    loop.push(early)
    with pytest.raises(EventLoopAbortingError, match="startup"):
        await early.wait()
    assert not loop.ready
    assert "startup deadline" in loop.health_log[-1][1]


