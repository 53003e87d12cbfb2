"""Fixtures: a VPP stand-in on a private socket, a connection to it, a scheduler with all descriptors."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.vpp.connection import VPPConnection
from plugins.vpp.descriptors import all_descriptors
from plugins.vpp.index import Indexes
from tests.vppstub import VPPStub, default_api_dir


@pytest.fixture
def socket_path() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="vppt-"))  # short: unix socket paths max 108 bytes
    try:
        yield directory / "api.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def stub(socket_path: Path) -> Iterator[VPPStub]:
    server = VPPStub(socket_path).start()
    try:
        yield server
    finally:
        server.stop()
        server.remove_host_taps()


@pytest.fixture
async def connection(stub: VPPStub) -> AsyncIterator[VPPConnection]:
    conn = VPPConnection(
        stub.socket_path, default_api_dir(), reply_timeout_s=2.0, reconnect_interval_s=0.05, health_interval_s=0.1
    )
    await conn.connect()
    try:
        yield conn
    finally:
        await conn.close()


def make_scheduler(connection: VPPConnection) -> KVScheduler:
    scheduler = KVScheduler(verify=True, retry=RetryPolicy(period_s=0.05, max_attempts=4, backoff=1.5))
    for descriptor in all_descriptors(connection, Indexes()):
        scheduler.register_descriptor(descriptor)
    return scheduler


@pytest.fixture
async def scheduler(connection: VPPConnection) -> AsyncIterator[KVScheduler]:
    sched = make_scheduler(connection)
    try:
        yield sched
    finally:
        await sched.close()


@pytest.fixture
def pod_netns() -> Iterator[str]:
    """A real network namespace for a pod (removed also on failure)."""
    name = f"vppt-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def host_veth(pod_netns: str) -> Iterator[str]:
    """A veth pair: the returned end in the host namespace, the peer (``eth0``) in ``pod_netns``."""
    host = f"vt{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", pod_netns], check=True)
    try:
        yield host
    finally:
        subprocess.run(["ip", "link", "del", host], check=False, capture_output=True)
