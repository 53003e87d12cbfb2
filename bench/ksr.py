"""KSR benchmark: initial reflection into a real etcd, and watch-event-to-etcd latency.

A Kubernetes API fake (tests/ksrfake) serves N pods and M services, each service with one
EndpointSlice; a real etcd-server is started on free loopback ports with mutual TLS (client
certificates required and etcd auth with contiv's roles, as contiv always runs it; KSR uses
its own certificate). Measured:

* ``raw_puts_per_s``: put rate of aetcd's bindings called directly over the same TLS
  (bench/rawetcd.py; 64 concurrent single-key puts), the baseline;
* ``broker_puts_per_s``: the same through the KV broker; ``broker_put_ratio`` = broker / raw
  (goal >= 0.85);
* ``initial_sync_s``: from starting the KSR plugin (leader election on) until every reflector
  has listed the API and written everything to etcd;
* ``event_p50_ms`` / ``event_p99_ms``: from a watch event arriving at KSR to its etcd
  transaction being committed, over a stream of pod updates (~200/s);
* ``broker_put_p50_ms`` / ``broker_put_p99_ms``: single sequential puts at the same pace, the
  floor under the event latency (etcd's commit and fsync).

The fake runs in a child process, as an API server would (it does not share KSR's interpreter).

Run: ``python bench/ksr.py --json out.json`` (``--pods``/``--services``/``--events`` to scale).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.certs.main import etcd_auth
from apps.certs.pki import write_set
from bench.rawetcd import RawEtcd
from core.etcdserver import EtcdServer, EtcdTLS
from core.kvdb.etcd import EtcdBroker, TLSFiles
from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from plugins.ksr.config import KSRConfig
from plugins.ksr.plugin import KSRPlugin
from tests.ksrfake.server import FakeKubernetes


def _pod(i: int) -> dict[str, Any]:
    ns = f"ns-{i % 100}"
    ip = f"10.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}"
    return {
        "metadata": {"name": f"pod-{i}", "namespace": ns, "labels": {"app": f"app-{i % 2000}"},
                     "annotations": {"contivpp.io/x": "y"}},
        "spec": {"nodeName": f"node-{i % 50}",
                 "containers": [{"name": "c", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.16.1",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def _service(i: int) -> dict[str, Any]:
    ip = f"10.96.{i // 256}.{i % 256}"
    return {
        "metadata": {"name": f"svc-{i}", "namespace": f"ns-{i % 100}"},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
                 "selector": {"app": f"app-{i}"},
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]},
    }


def _slice(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"svc-{i}-abcde", "namespace": f"ns-{i % 100}",
                     "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.1.{(i * 5 + k) // 256 % 256}.{(i * 5 + k) % 256}"],
                       "conditions": {"ready": True}, "nodeName": f"node-{k}"} for k in range(5)],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


async def _broker_put_latency(endpoint: str, tls: TLSFiles, count: int) -> list[float]:
    """Sequential single puts: the floor under KSR's event latency (etcd's commit + fsync)."""
    broker = EtcdBroker([endpoint], tls=tls)
    await broker.connect()
    try:
        value = json.dumps(_pod(0)).encode()
        out = []
        for i in range(count):
            start = time.perf_counter()
            await broker.put(f"/vnf-agent/contiv-ksr/bench/seq/{i % 100}", value)
            out.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.004)
        await broker.delete("/vnf-agent/contiv-ksr/bench/", prefix=True)
        return sorted(out)
    finally:
        await broker.close()


async def _put_rates(endpoint: str, tls: TLSFiles, count: int) -> tuple[float, float]:
    """64 concurrent single-key puts per second: aetcd over TLS, then the broker (3 rounds)."""
    broker = EtcdBroker([endpoint], tls=tls)
    raw = RawEtcd(endpoint, tls)
    await broker.connect()
    await raw.connect()
    try:
        limit = asyncio.Semaphore(64)
        value = json.dumps(_pod(0)).encode()

        async def measure(put: Any) -> float:
            async def one(i: int) -> None:
                async with limit:
                    await put(i)

            start = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(count)))
            elapsed = time.perf_counter() - start
            await broker.delete("/vnf-agent/contiv-ksr/bench/", prefix=True)
            return count / elapsed

        raw_rates, broker_rates = [], []
        for _ in range(3):  # interleaved, medians: neither side gets the cold or the quiet moments
            raw_rates.append(await measure(lambda i: raw.put(f"/vnf-agent/contiv-ksr/bench/{i}".encode(), value)))
            broker_rates.append(await measure(lambda i: broker.put(f"/vnf-agent/contiv-ksr/bench/{i}", value)))
        return statistics.median(raw_rates), statistics.median(broker_rates)
    finally:
        await broker.close()
        await raw.close()


def _serve_fake(conn: Connection) -> None:
    """Child process: the API fake, driven over a pipe (the API server is another process)."""
    fake = FakeKubernetes(bookmark_interval_s=1.0).start()
    conn.send(fake.url)
    while True:
        command, args = conn.recv()
        if command == "stop":
            fake.stop()
            conn.send(None)
            return
        getattr(fake, command)(*args)
        conn.send(None)


class RemoteFake:
    """The bench's handle on the fake running in a child process."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_fake, args=(child,), daemon=True)
        self._proc.start()
        self.url: str = self._conn.recv()

    def _call(self, command: str, *args: Any) -> None:
        self._conn.send((command, args))
        self._conn.recv()

    def apply(self, resource: str, obj: dict[str, Any]) -> None:
        self._call("apply", resource, obj)

    def apply_many(self, resource: str, objs: list[dict[str, Any]]) -> None:
        self._call("apply_many", resource, objs)

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    def stop(self) -> None:
        self._call("stop")
        self._proc.join(10)


async def run(pods: int, services: int, events: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ksr-bench-") as tmp:
        write_set(Path(tmp) / "pki")
        with EtcdServer(tls=EtcdTLS.from_dir(Path(tmp) / "pki")) as etcd:
            await etcd_auth(etcd.endpoint, Path(tmp) / "pki", (), 30)  # contiv's users and roles
            return await _run(etcd, Path(tmp), pods, services, events)


async def _run(etcd: EtcdServer, tmp: Path, pods: int, services: int, events: int) -> dict[str, float]:
    fake = RemoteFake()
    try:
        fake.apply_many("namespaces", [{"metadata": {"name": f"ns-{i}"}} for i in range(100)])
        fake.apply_many("nodes", [{"metadata": {"name": f"node-{i}"}} for i in range(50)])
        fake.apply_many("pods", [_pod(i) for i in range(pods)])
        fake.apply_many("services", [_service(i) for i in range(services)])
        fake.apply_many("endpointslices", [_slice(i) for i in range(services)])
        tls = etcd.client_tls("ksr")
        raw_puts_per_s, puts_per_s = await _put_rates(etcd.endpoint, tls, 5000)
        put_latencies = await _broker_put_latency(etcd.endpoint, tls, 1000)

        kvdb = KVDBPlugin(KVDBConfig.model_validate(etcd.kvdb_config("ksr")))
        await kvdb.init()
        config = KSRConfig(kubeconfig=fake.write_kubeconfig(tmp / "kubeconfig"), leader_ttl_s=5,
                           monitor_interval_s=0.5)
        ksr = KSRPlugin(config, kvdb=kvdb)
        await ksr.init()
        start = time.perf_counter()
        await ksr.after_init()
        while not (ksr.is_leader and all(ksr.synced().values())):
            await asyncio.sleep(0.005)
        initial_sync_s = time.perf_counter() - start
        written = len(await kvdb.broker.list("/vnf-agent/contiv-ksr/k8s/", keys_only=True))

        assert ksr.reflectors is not None
        reflector = ksr.reflectors.reflectors["pod"]
        reflector.latencies.clear()
        for i in range(events):
            pod = _pod(i % pods)
            pod["metadata"]["labels"]["rev"] = str(i)
            fake.apply("pods", pod)
            await asyncio.sleep(0.004)  # a steady stream of about 200 events/s
        while len(reflector.latencies) < events:
            await asyncio.sleep(0.01)
        latencies = sorted(x * 1000 for x in reflector.latencies)
        await ksr.close()
        await kvdb.close()
    finally:
        fake.stop()
    return {
        "initial_sync_s": round(initial_sync_s, 3),
        "event_p50_ms": round(statistics.median(latencies), 3),
        "event_p99_ms": round(_p99(latencies), 3),
        "raw_puts_per_s": round(raw_puts_per_s, 1),
        "broker_puts_per_s": round(puts_per_s, 1),
        "broker_put_ratio": round(puts_per_s / raw_puts_per_s, 3),
        "broker_put_p50_ms": round(statistics.median(put_latencies), 3),
        "broker_put_p99_ms": round(_p99(put_latencies), 3),
        "objects_written": written,
        "events": events,
        "tls": True,
    }


def _p99(sorted_values: list[float]) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--json", type=Path, help="write the results as one flat JSON object")
    args = parser.parse_args()
    results = asyncio.run(run(args.pods, args.services, args.events))
    print(f"KSR benchmark: {args.pods} pods, {args.services} services + EndpointSlices, {args.events} events; "
          "etcd with mutual TLS")
    print(f"{'metric':<22} {'value':>12}")
    for key, value in results.items():
        print(f"{key:<22} {value:>12}")
    if args.json is not None:
        args.json.write_text(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
