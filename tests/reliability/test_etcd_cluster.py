"""A 2-node lab on a real 3-member etcd cluster: the leader killed during pod churn, then a
second member (no quorum), both back; agents and KSR follow the cluster and nothing is lost."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apps.lab import etcd as etcdcluster
from apps.lab import netns
from apps.lab.cluster import Lab, LabError
from apps.lab.pods import Kubelet, probe
from tests.reliability import report
from tests.reliability.test_lab_failures import etcdctl, pod, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(900)]

LAB = f"we{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    made = Lab(LAB)
    try:
        made.up(2, etcd_members=3)
        yield made
    finally:
        Lab(LAB).down()


class Churn(threading.Thread):
    """Adds a pod and deletes the one before it, alternating nodes, until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.cycles = 0
        self.errors: list[str] = []
        self._progress = threading.Condition()

    def run(self) -> None:
        kubelet = Kubelet(Lab(LAB))  # its own state object (saves merge with the test's)
        previous: str | None = None
        while not self.stop.is_set():
            name = f"ch{self.cycles}"
            try:
                kubelet.add_pod(pod(name, f"node{self.cycles % 2 + 1}"))
                if previous is not None:
                    kubelet.delete_pod("default", previous)
                previous = name
            except LabError as exc:
                self.errors.append(str(exc))
            with self._progress:
                self.cycles += 1
                self._progress.notify_all()

    def wait_cycles(self, more: int, timeout_s: float = 300.0) -> None:
        """Block until ``more`` further cycles are done (woken by each cycle)."""
        with self._progress:
            target = self.cycles + more
            if not self._progress.wait_for(lambda: self.cycles >= target, timeout_s):
                raise AssertionError(f"churn stalled at {self.cycles} cycles: {self.errors}")


def allocations(lab: Lab, node: str) -> dict[str, Any]:
    state = lab.internal_state(node) or {}
    return dict((state.get("ipam") or {}).get("allocations") or {})


def test_leader_and_then_a_second_member_killed_during_churn(lab: Lab) -> None:
    churn = Churn()
    churn.start()
    try:
        churn.wait_cycles(2)
        first = etcdcluster.wait_leader(lab)
        etcdcluster.kill_member(lab, first)
        report.add(etcd_leader_kills=1)
        second = etcdcluster.wait_leader(lab)  # the other two elect a new leader
        assert second != first
        churn.wait_cycles(2)
        etcdcluster.kill_member(lab, second)  # quorum lost: pods are still wired locally
        report.add(etcd_leader_kills=1)
        churn.wait_cycles(2)
        etcdcluster.start_member(lab, first)
        etcdcluster.start_member(lab, second)
        etcdcluster.wait_leader(lab)
        churn.wait_cycles(2)
    finally:
        churn.stop.set()
        churn.join(300)
    report.add(cycles=churn.cycles, pods=churn.cycles)
    assert churn.errors == []

    lab.state = Lab(LAB).state
    lab.wait_converged(timeout_s=120)
    pods = {k: p for k, p in lab.state.pods.items()}
    assert pods
    # KSR has every live pod and no deleted one; each node's IPAM has exactly its pods.
    def ksr_pods() -> set[str]:
        out = etcdctl(lab, "get", "--prefix", "--keys-only", "/vnf-agent/contiv-ksr/k8s/pod/")
        return {f"default/{line.split('/')[5]}" for line in out.split() if line}

    wait_for(lambda: ksr_pods() == set(pods), f"KSR holds exactly {sorted(pods)}", 120)
    for node in lab.state.nodes:
        mine = {k for k, p in pods.items() if p.node == node}
        wait_for(lambda n=node, m=mine: set(allocations(lab, n)) == m,  # type: ignore[misc]
                 f"{node}'s allocations are its pods {sorted(mine)}", 120)
    leaked = sum(len(set(allocations(lab, n)) - set(pods)) for n in lab.state.nodes)
    ips = [p.ip for p in pods.values()]
    rows = probe(lab)
    report.add(leaked_allocations=leaked, duplicate_IPs=len(ips) - len(set(ips)),
               lost_pings=sum(1 for r in rows if not (r["ping"] and r["tcp"])))
    assert len(ips) == len(set(ips))
    assert all(r["ping"] and r["tcp"] for r in rows)
    for name in lab.state.nodes:
        lab.wait_agent_ready(name, timeout_s=120)  # its etcd probe may lag the data by a round
    assert netns.pid_alive(lab.state.ksr_pid)
