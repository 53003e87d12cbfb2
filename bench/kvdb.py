"""KV broker throughput against raw aetcd on the same real etcd over mutual TLS, in one run.

Puts, gets and watch events per second, each with the same concurrency through
``core.kvdb.EtcdBroker`` and through aetcd's bindings called directly (bench/rawetcd.py), both
with client certificates on an etcd that requires them, with contiv's users and roles (as
contiv always runs it; the bench is the agents' user). Prints a
table and writes JSON with ``put_ratio``, ``get_ratio``, ``watch_ratio`` (broker / raw; goal
>= 0.85 each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.certs.main import etcd_auth
from apps.certs.pki import write_set
from bench.rawetcd import RawEtcd
from core.etcdserver import EtcdServer, EtcdTLS
from core.kvdb.api import WatchEvent
from core.kvdb.etcd import EtcdBroker

#: Keys of one agent's prefix: the bench runs as the agents' etcd user, as contiv-agent does.
NODE = "/vnf-agent/bench-node/"


async def rate(n: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> float:
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await op(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


async def watch_rate(n: int, concurrency: int, writer: RawEtcd, prefix: str,
                     consume: Callable[[int, asyncio.Event], Awaitable[None]]) -> float:
    ready = asyncio.Event()
    task = asyncio.ensure_future(consume(n, ready))
    await ready.wait()
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    await rate(n, concurrency, lambda i: writer.put(f"{prefix}{i:08d}".encode(), b"v" * 100))
    await task
    return n / (time.perf_counter() - t0)


async def run(n: int, concurrency: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kvdb-bench-") as pki:
        write_set(Path(pki))
        with EtcdServer(tls=EtcdTLS.from_dir(Path(pki))) as server:
            await etcd_auth(server.endpoint, Path(pki), (), 30)  # contiv's users and roles
            return await _run(server, n, concurrency, rounds)


async def _run(server: EtcdServer, n: int, concurrency: int, rounds: int) -> dict[str, float]:
    raw = RawEtcd(server.endpoint, server.client_tls("agent"))
    await raw.connect()
    broker = EtcdBroker([server.endpoint], tls=server.client_tls("agent"))
    await broker.connect()
    value = b"v" * 100
    results: dict[str, list[float]] = {k: [] for k in
                                       ("raw_put", "broker_put", "raw_get", "broker_get",
                                        "raw_watch", "broker_watch")}
    for r in range(rounds):
        raw_key, brk_key = f"{NODE}raw/{r}/", f"{NODE}brk/{r}/"
        results["raw_put"].append(
            await rate(n, concurrency, lambda i, k=raw_key: raw.put(f"{k}{i:08d}".encode(), value)))
        results["broker_put"].append(
            await rate(n, concurrency, lambda i, k=brk_key: broker.put(f"{k}{i:08d}", value)))
        results["raw_get"].append(await rate(n, concurrency, lambda i, k=raw_key: raw.get(f"{k}{i:08d}".encode())))
        results["broker_get"].append(await rate(n, concurrency, lambda i, k=brk_key: broker.get(f"{k}{i:08d}")))

        async def raw_consume(count: int, ready: asyncio.Event, r: int = r) -> None:
            await raw.count_events(f"{NODE}rw/{r}/".encode(), count, ready)

        async def broker_consume(count: int, ready: asyncio.Event, r: int = r) -> None:
            it = broker.watch(f"{NODE}bw/{r}/", from_revision=await broker.revision() + 1).__aiter__()
            ready.set()
            got = 0
            while got < count:
                item = await it.__anext__()
                if isinstance(item, WatchEvent):
                    got += 1
            await it.aclose()  # type: ignore[attr-defined]

        results["raw_watch"].append(await watch_rate(n, concurrency, raw, f"{NODE}rw/{r}/", raw_consume))
        results["broker_watch"].append(await watch_rate(n, concurrency, raw, f"{NODE}bw/{r}/", broker_consume))
    await broker.close()
    await raw.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    return {
        "puts_per_s_raw": round(med["raw_put"]), "puts_per_s_broker": round(med["broker_put"]),
        "gets_per_s_raw": round(med["raw_get"]), "gets_per_s_broker": round(med["broker_get"]),
        "watch_events_per_s_raw": round(med["raw_watch"]), "watch_events_per_s_broker": round(med["broker_watch"]),
        "put_ratio": round(med["broker_put"] / med["raw_put"], 3),
        "get_ratio": round(med["broker_get"] / med["raw_get"], 3),
        "watch_ratio": round(med["broker_watch"] / med["raw_watch"], 3),
        "ops_per_round": n, "concurrency": concurrency, "rounds": rounds, "tls": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="write the metrics here")
    parser.add_argument("-n", type=int, default=5000, help="operations per measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    out = asyncio.run(run(args.n, args.concurrency, args.rounds))
    print("etcd with mutual TLS (client certificates) and contiv's roles; raw = aetcd over the same TLS")
    print(f"{'operation':<14}{'raw aetcd /s':>14}{'broker /s':>12}{'ratio':>8}")
    rows = (("put", "puts_per_s_raw", "puts_per_s_broker", "put_ratio"),
            ("get", "gets_per_s_raw", "gets_per_s_broker", "get_ratio"),
            ("watch event", "watch_events_per_s_raw", "watch_events_per_s_broker", "watch_ratio"))
    for op, raw_key, brk_key, ratio in rows:
        print(f"{op:<14}{out[raw_key]:>14}{out[brk_key]:>12}{out[ratio]:>8.3f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
