"""The etcd write order of the pod records: per pod in call order, pods at once, a full
synchronisation alone."""

from __future__ import annotations

import asyncio

from plugins.podmanager.writeorder import WriteOrder


async def test_keys_write_concurrently_each_in_call_order() -> None:
    order = WriteOrder()
    log: list[str] = []
    gates = {name: asyncio.Event() for name in ("a1", "a2", "b1")}

    async def write(key: str, name: str) -> None:
        async with order.write(key):
            log.append(f"start {name}")
            await gates[name].wait()
            log.append(f"end {name}")

    tasks = [asyncio.create_task(write("a", "a1")), asyncio.create_task(write("a", "a2")),
             asyncio.create_task(write("b", "b1"))]
    await asyncio.sleep(0)
    # a1 and b1 are in flight together; a2 waits for a1.
    assert log == ["start a1", "start b1"]
    gates["a2"].set()
    gates["b1"].set()
    await tasks[2]
    assert "start a2" not in log
    gates["a1"].set()
    await asyncio.gather(*tasks)
    assert log.index("end a1") < log.index("start a2")
    assert order._locks == {}  # per-key locks do not pile up


async def test_exclusive_waits_for_writes_in_flight_and_holds_new_ones_back() -> None:
    order = WriteOrder()
    log: list[str] = []
    release = asyncio.Event()

    async def write(key: str, gate: asyncio.Event | None = None) -> None:
        async with order.write(key):
            log.append(f"write {key}")
            if gate is not None:
                await gate.wait()

    async def sync() -> None:
        async with order.exclusive():
            log.append("sync start")
            await asyncio.sleep(0)
            log.append("sync end")

    first = asyncio.create_task(write("a", release))
    await asyncio.sleep(0)
    syncing = asyncio.create_task(sync())
    await asyncio.sleep(0)
    later = asyncio.create_task(write("b"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert log == ["write a"]  # the sync waits for a; b waits for the sync
    release.set()
    await asyncio.gather(first, syncing, later)
    assert log == ["write a", "sync start", "sync end", "write b"]
