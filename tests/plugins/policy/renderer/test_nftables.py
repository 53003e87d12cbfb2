"""The policy table on a real kernel, through the Linux dataplane's table descriptor and the
real KV scheduler in a throw-away namespace: written whole, read back equal (a resync writes
nothing), changed by diffs only, drift repaired by writing only the difference."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from plugins.kvscheduler.api import Operation, ResyncMode
from plugins.kvscheduler.scheduler import KVScheduler
from plugins.linux.descriptors.nfttable import NftTableDescriptor
from plugins.linux.nft.table import NftTableValue, table_key, update_batch
from tests.plugins.policy import netpol_cases as nc
from tests.plugins.policy.harness import Cluster, apply_all

pytestmark = pytest.mark.netns


def sh(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("needs root")
    name = f"pol{os.getpid()}-{uuid.uuid4().hex[:4]}"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name)


@pytest.fixture
async def scheduler() -> AsyncIterator[tuple[KVScheduler, NftTableDescriptor]]:
    sched = KVScheduler(verify=True)
    desc = NftTableDescriptor()
    sched.register_descriptor(desc)
    yield sched, desc
    await sched.close()


def table_in(ns: str, cluster: Cluster, node: int = 0) -> NftTableValue:
    table = cluster.tables()[cluster.nodes[node].name]
    return table.model_copy(update={"namespace": ns})


def nft(ns: str, *args: str) -> str:
    return sh("ip", "netns", "exec", ns, "nft", *args)


async def test_written_read_back_equal_and_changed_by_diffs(
    netns: str, scheduler: tuple[KVScheduler, NftTableDescriptor]
) -> None:
    sched, desc = scheduler
    cluster = Cluster()
    apply_all(cluster, nc.CASES["union"](cluster.ips) + nc.CASES["egress-ipblock-except"](cluster.ips)
              + nc.CASES["egress-named-port"](cluster.ips))
    first = table_in(netns, cluster)
    key = table_key(netns, "inet", first.name)
    result = await sched.commit({key: first})
    assert result.ok, result.errors
    listing = nft(netns, "list", "table", "inet", first.name)
    assert "ip saddr vmap @egress" in listing and "flags interval" in listing
    writes = desc.writes
    result = await sched.commit({key: first}, resync=ResyncMode.FULL)
    assert result.ok and result.operations == [] and desc.writes == writes  # read back equal
    apply_all(cluster, nc.CASES["from-namespace-notin"](cluster.ips))
    second = table_in(netns, cluster)
    batch = update_batch(first, second)
    assert batch and "table" not in batch  # a diff, never a rebuild
    result = await sched.commit({key: second})
    assert result.ok, result.errors
    assert [op.operation for op in result.operations] == [Operation.UPDATE]
    assert desc.writes == writes + 1  # one atomic batch
    result = await sched.commit({key: second}, resync=ResyncMode.FULL)
    assert result.ok and result.operations == []


async def test_drift_is_repaired(netns: str, scheduler: tuple[KVScheduler, NftTableDescriptor]) -> None:
    sched, desc = scheduler
    cluster = Cluster()
    apply_all(cluster, nc.CASES["pod-or-namespace"](cluster.ips) + nc.CASES["deny-egress"](cluster.ips))
    table = table_in(netns, cluster)
    key = table_key(netns, "inet", table.name)
    assert (await sched.commit({key: table})).ok
    pod_group = next(g for name, g in table.elements.items() if name.startswith("pod/"))
    set_group = next(g for name, g in table.elements.items() if name.startswith("set/"))
    chain = next(name for name in table.chains if name.startswith(("i-", "e-")))
    nft(netns, "delete", "element", "inet", table.name, pod_group[0][0], f"{{ {pod_group[0][1]} }}")
    nft(netns, "delete", "element", "inet", table.name, set_group[0][0], f"{{ {set_group[0][1]} }}")
    nft(netns, "insert", "rule", "inet", table.name, chain, "accept")
    writes = desc.writes
    result = await sched.commit({key: table}, resync=ResyncMode.FULL)
    assert result.ok, result.errors
    assert [op.operation for op in result.operations] == [Operation.UPDATE]
    assert desc.writes == writes + 1
    listing = nft(netns, "list", "table", "inet", table.name)
    assert f"{pod_group[0][1]} : {pod_group[0][2]}" in listing
    result = await sched.commit({key: table}, resync=ResyncMode.FULL)
    assert result.ok and result.operations == []  # repaired exactly


async def test_removed_with_its_value(netns: str, scheduler: tuple[KVScheduler, NftTableDescriptor]) -> None:
    sched, _ = scheduler
    cluster = Cluster()
    apply_all(cluster, nc.CASES["deny-both"](cluster.ips))
    table = table_in(netns, cluster)
    key = table_key(netns, "inet", table.name)
    assert (await sched.commit({key: table})).ok
    assert (await sched.commit({key: None})).ok
    assert "contiv-policy" not in nft(netns, "list", "tables")
