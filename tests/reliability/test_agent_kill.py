"""The agent killed (SIGKILL) at a random moment of concurrent CNI ADDs and DELs.

A real agent in a node namespace (``apps.cni.testbed``); pods are namespaces wired through the
``contiv-cni`` binary by a runtime that behaves like kubelet: a failed ADD is followed by DEL
and retried, a failed DEL is retried. After each cycle the invariants hold: no duplicate pod
address, no IPAM allocation without a pod record, no pod without its allocation, no leftover
interface or route of a deleted pod, every live pod answers a ping from the node.
``RELIABILITY_CYCLES`` (default 3) sets the length; ``make soak`` runs many more.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from apps.cni.runtime import CNIPluginError
from tests.e2e.testbed import NodeTestbed, PodSandbox, in_ns, sh
from tests.reliability import report

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(1800)]

CYCLES = int(os.environ.get("RELIABILITY_CYCLES", "3"))
PODS_PER_CYCLE = 6
SEED = int(os.environ.get("RELIABILITY_SEED", str(int(time.time()))))


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeTestbed]:
    testbed = NodeTestbed(tmp_path_factory.mktemp("kill"), prefix="wrk")
    testbed.start()
    try:
        yield testbed
    finally:
        testbed.close()


def restart(bed: NodeTestbed) -> None:
    bed.kill_agent(signal.SIGKILL)
    bed.start_agent()
    bed.wait_ready(120)


def with_kill(bed: NodeTestbed, rng: random.Random, ops: list[Callable[[], Any]]) -> list[Any]:
    """Run ``ops`` concurrently; SIGKILL the agent at a random moment meanwhile."""
    delay = rng.uniform(0.0, 0.6)
    killer = threading.Timer(delay, lambda: bed.kill_agent(signal.SIGKILL))
    killer.start()
    with ThreadPoolExecutor(len(ops)) as pool:
        outcomes = list(pool.map(_attempt, ops))
    killer.join()
    report.add(kills=1)
    bed.start_agent()
    bed.wait_ready(120)
    return outcomes


def _attempt(op: Callable[[], Any]) -> Any:
    try:
        return op()
    except CNIPluginError as exc:
        return exc


def kubelet_add(bed: NodeTestbed, pod: PodSandbox) -> None:
    """ADD until it succeeds; DEL after every failure, as kubelet does."""
    for _ in range(5):
        try:
            bed.add(pod)
            return
        except CNIPluginError:
            pod.result = None
            kubelet_del(bed, pod)
    raise AssertionError(f"ADD of {pod.name} kept failing:\n{bed.agent_log()}")


def kubelet_del(bed: NodeTestbed, pod: PodSandbox) -> None:
    for _ in range(5):
        try:
            bed.delete(pod)
            return
        except CNIPluginError:
            continue
    raise AssertionError(f"DEL of {pod.name} kept failing:\n{bed.agent_log()}")


def host_links(bed: NodeTestbed) -> set[str]:
    out = sh("ip", "-n", bed.node_ns, "-o", "link").stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()
            if line.split(": ")[1].startswith("cv")}


def check_invariants(bed: NodeTestbed, live: dict[str, PodSandbox], gone: list[PodSandbox]) -> None:
    records = bed.records()
    alloc_doc: dict[str, Any] = bed.http_json("/contiv/v1/ipam/allocations")
    allocations = {f"{a['namespace']}/{a['name']}": a["ip"] for a in alloc_doc["allocations"]}
    live_keys = {f"default/{name}" for name in live}
    ips = [pod.ip for pod in live.values()]
    lost = live_keys - set(records)
    leaked = set(allocations) - live_keys
    without = live_keys - set(allocations)
    wrong_ip = {k for k in live_keys & set(allocations) if allocations[k] != live[k[8:]].ip}
    links = host_links(bed)
    leftover = [p.name for p in gone
                if p.result and p.result["interfaces"][0]["name"] in links]
    routes = sh("ip", "-n", bed.node_ns, "route").stdout
    leftover += [p.name for p in gone if p.result and f"{p.ip} dev" in routes]
    unreachable = [name for name, pod in live.items()
                   if in_ns(bed.node_ns, "ping", "-c", "1", "-W", "3", pod.ip,
                            check=False).returncode != 0]
    report.add(lost_pods=len(lost), duplicate_IPs=len(ips) - len(set(ips)),
               leaked_allocations=len(leaked), pods_without_allocation=len(without | wrong_ip),
               leftover_interfaces=len(leftover), lost_pings=len(unreachable))
    detail = f"(seed {SEED})\n{bed.agent_log()}"
    assert not lost, f"pods without record {lost} {detail}"
    assert len(ips) == len(set(ips)), f"duplicate IPs {sorted(ips)} {detail}"
    assert not leaked, f"allocations without pod {leaked} {detail}"
    assert not without and not wrong_ip, f"pods without allocation {without | wrong_ip} {detail}"
    assert set(records) == live_keys, f"records of deleted pods {set(records) - live_keys}"
    assert not leftover, f"interfaces/routes of deleted pods {leftover} {detail}"
    assert len(links) == len(live), f"host veths {sorted(links)} for {sorted(live)} {detail}"
    assert not unreachable, f"unreachable pods {unreachable} {detail}"


def test_agent_sigkill_during_concurrent_adds_and_dels(bed: NodeTestbed, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    live: dict[str, PodSandbox] = {}
    gone: list[PodSandbox] = []
    try:
        for cycle in range(CYCLES):
            fresh = [bed.new_pod(f"k{cycle}x{i}") for i in range(PODS_PER_CYCLE)]
            report.add(cycles=1, pods=len(fresh))
            outcomes = with_kill(bed, rng, [lambda p=p: bed.add(p) for p in fresh])
            for pod, outcome in zip(fresh, outcomes, strict=True):
                if isinstance(outcome, CNIPluginError):
                    pod.result = None
                    kubelet_del(bed, pod)  # the runtime's DEL after a failed ADD
                    kubelet_add(bed, pod)  # and its retry
                live[pod.name] = pod
            # Delete a random half of the live pods concurrently, killing the agent again.
            victims = rng.sample(sorted(live), len(live) // 2)
            outcomes = with_kill(bed, rng, [lambda n=n: bed.delete(live[n]) for n in victims])
            for name, outcome in zip(victims, outcomes, strict=True):
                if isinstance(outcome, CNIPluginError):
                    kubelet_del(bed, live[name])
                pod = live.pop(name)
                gone.append(pod)
                bed.delete_pod_namespace(pod)
            check_invariants(bed, live, gone)
    finally:
        for pod in list(live.values()):
            try:
                kubelet_del(bed, pod)
            except AssertionError:
                pass
