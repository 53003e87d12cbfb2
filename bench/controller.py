"""Benchmark of the controller's event loop.

* ``events_per_s``: non-blocking update events through the loop with 5 no-op handlers.
* ``blocking_p50_ms`` / ``blocking_p99_ms``: push-to-outcome latency of one blocking event at a
  time (5 no-op handlers).
* ``txn_events_per_s``: events whose handler puts one value each, committed to the real
  KVScheduler over its in-memory test southbound (one transaction per event).

Usage: ``python bench/controller.py [--events N] [--blocking N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from table import agent_process_policy  # bench/table.py (the script's directory is on sys.path)

from core.plugin import Plugin
from plugins.controller.api import Event, EventHandler, EventMethod, KubeStateReader, Transaction
from plugins.controller.errors import EventQueueFullError
from plugins.controller.eventloop import EventLoop
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import ITEM_PREFIX, Item, ItemDescriptor, MemoryDevice


class Tick(Event):
    name = "Tick"

    def __init__(self, n: int, blocking: bool = False) -> None:
        self.blocking = blocking
        super().__init__()
        self.n = n


class StartResync(Event):
    name = "Start"
    method = EventMethod.FULL_RESYNC


def noop_handler(index: int) -> Plugin:
    class NoOp(Plugin, EventHandler):
        name = f"noop-{index}"

        def handles_event(self, event: Event) -> bool:
            return True

        def resync(
            self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction
        ) -> None:
            return None

        def update(self, event: Event, txn: Transaction) -> str | None:
            return None

    return NoOp()


class Putter(Plugin, EventHandler):
    name = "putter"

    def handles_event(self, event: Event) -> bool:
        return True

    def update(self, event: Event, txn: Transaction) -> str | None:
        n = getattr(event, "n", 0) % 500
        txn.put(f"{ITEM_PREFIX}v{n}", Item(name=f"v{n}", data=str(getattr(event, "n", 0))))
        return "put"


async def started_loop(handlers: list[Plugin], scheduler: Any) -> EventLoop:
    loop = EventLoop(scheduler, handlers)
    loop.start()
    first = StartResync()
    loop.push(first)
    while not loop.started:
        await asyncio.sleep(0.001)
    return loop


async def throughput(loop: EventLoop, count: int) -> float:
    last = Tick(count, blocking=True)
    start = time.perf_counter()
    for n in range(count - 1):
        while True:
            try:
                loop.push(Tick(n))
                break
            except EventQueueFullError:
                await asyncio.sleep(0)
    loop.push(last)
    await last.wait()
    return count / (time.perf_counter() - start)


async def blocking_latency(loop: EventLoop, count: int) -> list[float]:
    samples = []
    for n in range(count):
        event = Tick(n, blocking=True)
        start = time.perf_counter()
        loop.push(event)
        await event.wait()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(events: int, blocking: int) -> dict[str, float]:
    scheduler = KVScheduler(record_history=False)
    loop = await started_loop([noop_handler(i) for i in range(5)], scheduler)
    try:
        events_per_s = await throughput(loop, events)
        samples = await blocking_latency(loop, blocking)
    finally:
        await loop.stop()
        await scheduler.close()
    txn_scheduler = KVScheduler(record_history=False)
    txn_scheduler.register_descriptor(ItemDescriptor(MemoryDevice()))
    txn_loop = await started_loop([Putter()], txn_scheduler)
    try:
        txn_events_per_s = await throughput(txn_loop, max(1000, events // 10))
    finally:
        await txn_loop.stop()
        await txn_scheduler.close()
    return {
        "events_per_s": round(events_per_s, 1),
        "blocking_p50_ms": round(percentile(samples, 0.5), 4),
        "blocking_p99_ms": round(percentile(samples, 0.99), 4),
        "blocking_mean_ms": round(statistics.fmean(samples), 4),
        "txn_events_per_s": round(txn_events_per_s, 1),
        "events": events,
        "blocking_samples": blocking,
    }


def main() -> None:
    agent_process_policy()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="non-blocking events to push")
    parser.add_argument("--blocking", type=int, default=2000, help="blocking events to time")
    parser.add_argument("--json", type=Path, help="write the results as one flat JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args.events, args.blocking))
    width = max(len(k) for k in result)
    print(f"{'metric':<{width}}  value")
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
