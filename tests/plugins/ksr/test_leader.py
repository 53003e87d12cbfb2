"""Leader election: two KSR replicas on one etcd, exactly one writes; failover on death."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.etcdserver import EtcdServer
from core.kvdb.api import Compare, Op
from core.kvdb.etcd import EtcdBroker
from plugins.ksr import keys as ks
from plugins.ksr import model as m
from plugins.ksr.leader import LEADER_KEY
from plugins.ksr.writer import NotLeaderError, Writer
from tests.ksrfake.server import FakeKubernetes
from tests.plugins.ksr import helpers as h
from tests.plugins.ksr.conftest import RunKSR

REPO = Path(__file__).resolve().parents[3]


async def test_only_the_leader_writes_and_the_standby_takes_over(
    fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    fake_k8s.apply("nodes", h.node("node1"))
    async with run_ksr(fake_k8s, leader_ttl_s=2, instance_id="first") as first:
        await h.wait_for(lambda: _value(first.is_leader), what="first elected")
        async with run_ksr(fake_k8s, leader_ttl_s=2, instance_id="second") as second:
            await h.wait_stored(broker, ks.node_key("node1"), lambda v: v is not None)
            assert not second.is_leader and second.reflectors is None
            assert (await broker.get(LEADER_KEY)) is not None
            await first.close()  # resigns: the lease is revoked, the standby takes over at once
            await h.wait_for(lambda: _value(second.is_leader), 5, "second elected")
            fake_k8s.apply("nodes", h.node("node2"))
            await h.wait_stored(broker, ks.node_key("node2"), lambda v: v is not None)
            gauges = await h.wait_stored(
                broker, m.STATUS_GAUGES_KEY, lambda v: v is not None and v["leader"] == "second"
            )
            assert gauges is not None


async def _value(value: bool) -> bool:
    return value


async def test_a_leader_whose_lease_is_lost_steps_down_and_campaigns_again(
    fake_k8s: FakeKubernetes, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    fake_k8s.apply("nodes", h.node("node1"))
    async with run_ksr(fake_k8s, leader_ttl_s=3, instance_id="only") as ksr:
        await h.wait_stored(broker, ks.node_key("node1"), lambda v: v is not None)
        held = await broker.get(LEADER_KEY)
        assert held is not None and held.lease
        first_term = ksr.reflectors
        await broker.revoke_lease(held.lease)  # e.g. etcd expired it during a long pause

        async def new_term() -> bool:
            again = await broker.get(LEADER_KEY)
            return (
                again is not None and again.lease != held.lease
                and ksr.reflectors is not None and ksr.reflectors is not first_term
            )

        await h.wait_for(new_term, 10, "a new term with a new lease")
        fake_k8s.apply("nodes", h.node("node3"))
        await h.wait_stored(broker, ks.node_key("node3"), lambda v: v is not None)


async def test_guarded_writes_fail_for_a_deposed_leader(broker: EtcdBroker) -> None:
    await broker.put(LEADER_KEY, b"someone-else")
    writer = Writer(broker, guard=Compare(LEADER_KEY, "value", b"me"))
    with pytest.raises(NotLeaderError):
        await writer.apply({m.KSR_PREFIX + ks.node_key("x"): b"{}"})
    assert await broker.get(m.KSR_PREFIX + ks.node_key("x")) is None
    await broker.txn([], [Op.Put(LEADER_KEY, b"me")])
    await writer.apply({m.KSR_PREFIX + ks.node_key("x"): b"{}"})
    assert await broker.get(m.KSR_PREFIX + ks.node_key("x")) is not None


# ---------------------------------------------------------------------------- real processes


def _config(tmp_path: Path, name: str, manifests: Path | None) -> Path:
    """An app config; without ``manifests`` the source comes from ``--source-dir``."""
    ksr: dict[str, object] = {
        "dir_poll_interval_s": 0.1, "leader_ttl_s": 2, "monitor_interval_s": 0.2, "stats_interval_s": 0.3,
    }
    if manifests is not None:
        ksr.update({"source": "dir", "source_dir": str(manifests)})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "plugins": ["http", "health", "metrics", "kvdb", "ksr"],
        "http": {"address": "127.0.0.1", "port": 0},
        "kvdb": {"backend": "etcd"},
        "ksr": ksr,
    }))
    return path


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def _spawn(etcd: EtcdServer, config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **etcd.client_env("ksr"), "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "apps.ksr.main", "--config", str(config), *args],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


async def test_failover_between_two_processes(
    etcd: EtcdServer, broker: EtcdBroker, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "nodes.yaml").write_text(yaml.safe_dump_all([h.node("node1")]))
    processes.append(_spawn(etcd, _config(tmp_path, "a", manifests), tmp_path / "a.log"))
    processes.append(
        _spawn(etcd, _config(tmp_path, "b", None), tmp_path / "b.log", "--source-dir", str(manifests))
    )
    await h.wait_stored(broker, ks.node_key("node1"), lambda v: v is not None, 30)
    leader_kv = await broker.get(LEADER_KEY)
    assert leader_kv is not None
    leader_id = leader_kv.value.decode()
    leader = next(p for p in processes if f"-{p.pid}-" in leader_id)
    standby = next(p for p in processes if p is not leader)
    gauges = await h.wait_stored(broker, m.STATUS_GAUGES_KEY, lambda v: v is not None)
    assert gauges is not None and gauges["leader"] == leader_id
    leader.send_signal(signal.SIGKILL)  # no resignation: the lease has to expire
    leader.wait(10)
    (manifests / "nodes.yaml").write_text(yaml.safe_dump_all([h.node("node1"), h.node("node2")]))
    await h.wait_stored(broker, ks.node_key("node2"), lambda v: v is not None, 30)
    new_leader = await broker.get(LEADER_KEY)
    assert new_leader is not None and f"-{standby.pid}-" in new_leader.value.decode()
    assert standby.poll() is None
    standby.send_signal(signal.SIGTERM)
    log = tmp_path / ("b.log" if standby is processes[1] else "a.log")
    assert standby.wait(15) == 0, log.read_text()[-2000:]
    # A clean stop resigns: the election key goes with the revoked lease.
    assert await broker.get(LEADER_KEY) is None


def test_version_and_bad_config(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "apps.ksr.main", "--version"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("contiv-ksr ")
    for section, expected in (({"colour": "red"}, "ksr.colour"), ({"source": "dir"}, "source_dir is required")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(json.dumps({"plugins": ["kvdb", "ksr"], "ksr": section}))
        out = subprocess.run([sys.executable, "-m", "apps.ksr.main", "--config", str(bad), "--validate-config"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2
        assert expected in out.stderr and "bad.yaml" in out.stderr
