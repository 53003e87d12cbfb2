"""KV scheduler benchmark: 10k-value transaction, no-op full resync, single changes, memory.

Run: ``python bench/kvscheduler.py --json out.json [--values 10000] [--changes 1000]``.

The values are :class:`plugins.kvscheduler.testing.Item` on the in-memory test device. Value
``i`` (i >= 3) depends on three distinct earlier values; the names are shuffled so that the
transaction's key order is unrelated to the dependency order (many values go PENDING first
and are created when their dependencies appear, the scheduler's worst case for ordering).
``restart_resync_noop_10k_s`` is the first full resync of a fresh scheduler (an agent
restart) on the same dataplane, with values that derive properties others depend on: it
reads everything back, derives, and performs no operation. ``bytes_per_value`` is what the
scheduler retains per value after the transaction (graph node, dependency indexes, status,
history record, metadata map, plus the test device's own dict), measured with tracemalloc;
the value models themselves belong to the caller and are reported apart as ``model_bytes_per_value``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pydantic import BaseModel
from table import agent_process_policy  # bench/table.py (the script's directory is on sys.path)

from plugins.kvscheduler.api import ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.kvscheduler.testing import (
    ITEM_PREFIX,
    Item,
    ItemDescriptor,
    MemoryDevice,
)

GOALS = {
    "txn_10k_s": 0.5,
    "full_resync_noop_10k_s": 0.3,
    "change_p50_ms": 2.0,
    "bytes_per_value": 2048.0,
}


def build_values(count: int, seed: int = 7, *, derived: bool = False) -> dict[str, BaseModel | None]:
    """``derived``: every value also derives a property ``prop/<name>/up`` and depends on the
    properties of three earlier values instead of on the values themselves."""
    rng = random.Random(seed)
    names = [f"v{i:06d}" for i in range(count)]
    rng.shuffle(names)
    values: dict[str, BaseModel | None] = {}
    for i, name in enumerate(names):
        deps: tuple[str, ...] = ()
        if i >= 3:
            picked = [names[j] for j in rng.sample(range(i), 3)]
            deps = tuple(f"prop/{n}/up" if derived else ITEM_PREFIX + n for n in picked)
        props = ((f"prop/{name}/up", ""),) if derived else ()
        values[ITEM_PREFIX + name] = Item(name=name, data="x", depends_on=deps, derived=props)
    return values


async def restart_resync(count: int) -> float:
    """A fresh scheduler's first full resync (an agent restart) on a dataplane that equals the
    desired state: values with derived properties that others depend on; no operation."""
    values = build_values(count, derived=True)
    device = MemoryDevice()
    first = KVScheduler(verify=False)
    first.register_descriptor(ItemDescriptor(device))
    result = await first.commit(values)
    assert result.ok and len(device.objects) == count, result.errors
    await first.close()
    second = KVScheduler(verify=False)
    second.register_descriptor(ItemDescriptor(device))
    started = time.perf_counter()
    result = await second.commit(values, resync=ResyncMode.FULL)
    elapsed = time.perf_counter() - started
    assert result.ok and not result.operations, result.operations[:3]
    await second.close()
    return elapsed


async def run(count: int, changes: int, repeat: int) -> dict[str, float]:
    # Memory pass (traced, so not timed): everything retained by one 10k transaction.
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    values = build_values(count)
    models = tracemalloc.get_traced_memory()[0] - baseline
    baseline += models
    device = MemoryDevice()
    scheduler = KVScheduler(verify=False)
    scheduler.register_descriptor(ItemDescriptor(device))
    result = await scheduler.commit(values)
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert result.ok and len(device.objects) == count, result.errors
    await scheduler.close()
    del scheduler, device, values, result
    gc.collect()

    # Timed passes: the machine is shared, so the 10k transaction and the no-op resync are
    # each run ``repeat`` times on fresh schedulers and the median is reported.
    txn_runs: list[float] = []
    resync_runs: list[float] = []
    for _ in range(repeat):
        values = build_values(count)
        device = MemoryDevice()
        scheduler = KVScheduler(verify=False)
        scheduler.register_descriptor(ItemDescriptor(device))
        started = time.perf_counter()
        result = await scheduler.commit(values)
        txn_runs.append(time.perf_counter() - started)
        assert result.ok and len(device.objects) == count, result.errors

        started = time.perf_counter()
        result = await scheduler.commit(values, resync=ResyncMode.FULL)
        resync_runs.append(time.perf_counter() - started)
        assert result.ok and not result.operations, result.operations[:3]
    txn_s = statistics.median(txn_runs)
    resync_s = statistics.median(resync_runs)
    restart_s = statistics.median([await restart_resync(count) for _ in range(repeat)])

    keys = list(values)
    rng = random.Random(11)
    samples: list[float] = []
    for n in range(changes):
        key = rng.choice(keys)
        old = values[key]
        assert isinstance(old, Item)
        new = old.model_copy(update={"data": f"change-{n}"})
        values[key] = new
        started = time.perf_counter()
        result = await scheduler.commit({key: new})
        samples.append((time.perf_counter() - started) * 1000)
        assert result.ok and len(result.operations) == 1
    await scheduler.close()
    samples.sort()
    return {
        "values": float(count),
        "txn_10k_s": round(txn_s, 4),
        "full_resync_noop_10k_s": round(resync_s, 4),
        "restart_resync_noop_10k_s": round(restart_s, 4),
        "change_p50_ms": round(statistics.median(samples), 4),
        "change_p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 4),
        "bytes_per_value": round(retained / count, 1),
        "model_bytes_per_value": round(models / count, 1),
    }


def main(argv: list[str] | None = None) -> int:
    agent_process_policy()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    args = parser.parse_args(argv)
    if args.values < 4 or args.changes < 1 or args.repeat < 1:
        parser.error("--values must be >= 4, --changes and --repeat >= 1")
    results = asyncio.run(run(args.values, args.changes, args.repeat))
    print(f"{'metric':<26}{'value':>12}{'goal':>10}")
    for key, value in results.items():
        goal = GOALS.get(key)
        goal_text = f"< {goal:g}" if goal is not None else ""
        print(f"{key:<26}{value:>12g}{goal_text:>10}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
