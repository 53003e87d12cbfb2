"""kill -9 of an agent process: the next start keeps every address it handed out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from core.etcdserver import EtcdServer
from core.kvdb.api import agent_prefix
from core.kvdb.plugin import KVDBPlugin
from plugins.ipam.store import PodIPAllocation
from plugins.podmanager.api import PodID
from tests.plugins.ipam.helpers import Node

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def agent_process(etcd: EtcdServer, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.plugins.ipam.crash_agent", json.dumps(etcd.kvdb_config()),
         str(tmp_path / "ipam.json")],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def ask(proc: subprocess.Popen[str], line: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


async def test_kill_9_while_etcd_is_down_loses_no_allocation(
    etcd: EtcdServer, etcd_kvdb: KVDBPlugin, agent_process: subprocess.Popen[str], tmp_path: Path
) -> None:
    assert agent_process.stdout is not None
    assert agent_process.stdout.readline().strip() == "started"
    first = ask(agent_process, "alloc a")
    assert first == "a 10.1.1.2"
    etcd.stop()  # what follows never reaches etcd before the crash
    held = dict(line.split() for line in (ask(agent_process, f"alloc {n}") for n in ("b", "c", "d")))
    assert held == {"b": "10.1.1.3", "c": "10.1.1.4", "d": "10.1.1.5"}
    agent_process.send_signal(signal.SIGKILL)
    agent_process.wait(10)
    etcd.start()

    node = Node(etcd_kvdb, tmp_path / "ipam.json")
    ipam = await node.start()
    try:
        expected = {PodID(n, "default"): IPv4Address(ip) for n, ip in {"a": "10.1.1.2", **held}.items()}
        assert dict(ipam.allocations()) == expected
        assert ipam.allocate_pod_ip(PodID("e", "default")) == IPv4Address("10.1.1.6")
        assert await ipam.flush_to_etcd(10)
        stored = await etcd_kvdb.broker.list_models(agent_prefix("node-a") + "ipam/allocations/", PodIPAllocation)
        assert {r.pod: IPv4Address(r.ip_address) for r in stored.values()} == {
            **expected, PodID("e", "default"): IPv4Address("10.1.1.6")
        }
    finally:
        await node.stop()
