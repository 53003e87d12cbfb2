"""CNI ADD/DEL latency end to end through the binary, against Debian's bridge + host-local.

A node namespace runs etcd and a real contiv-agent (``tests/e2e/testbed.py``); pods are namespaces.
Every operation is timed as a runtime sees it: executing the plugin (``ip netns exec <node>
<plugin>``) with the network config on stdin until it exits. The reference plugins run the
same way in the same node namespace, interleaved with ours so both see the same machine load.

    python bench/cni.py --json out.json [--pods 100] [--parallel 10]

Needs root. Prints a table; writes one flat JSON object (times in milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.testbed import NodeTestbed, PodSandbox, in_ns, sh

BURST = 30


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def children_cpu(op: Callable[[], float], runs: int = 20) -> tuple[list[float], float]:
    """``op``'s results over ``runs`` calls, and the CPU (ms) per call of the children it ran."""
    before = os.times()
    results = [op() for _ in range(runs)]
    after = os.times()
    used = (after.children_user + after.children_system) - (before.children_user
                                                            + before.children_system)
    return results, used * 1000 / runs


def timed(op: Callable[..., object], *args: Any) -> float:
    start = time.perf_counter()
    op(*args)
    return (time.perf_counter() - start) * 1000


class CPU:
    """CPU time (ms) of the plugin processes this bench ran (waited-for children) and of the
    agent (user and system: the kernel's netlink work runs in the agent's system calls)."""

    def __init__(self, agent_pid: int) -> None:
        self.agent_pid = agent_pid
        self.tick_ms = 1000 / os.sysconf("SC_CLK_TCK")

    def sample(self) -> tuple[float, float, float]:
        t = os.times()
        fields = Path(f"/proc/{self.agent_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return ((t.children_user + t.children_system) * 1000,
                int(fields[11]) * self.tick_ms, int(fields[12]) * self.tick_ms)

    @staticmethod
    def per_op(before: tuple[float, float, float], after: tuple[float, float, float],
               ops: int) -> tuple[float, float, float]:
        binary, user, system = (b - a for a, b in zip(before, after, strict=True))
        return binary / ops, user / ops, system / ops


def bridge_network(workdir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "bridge-reference",
        "plugins": [{
            "type": "bridge", "bridge": "cnibr0", "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "subnet": "10.250.0.0/16",
                     "dataDir": str(workdir / "host-local")},
        }],
    }


def run(pods: int, parallel: int, agent_command: list[str] | None) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="cni-bench-"))
    bed = NodeTestbed(workdir, prefix="cnib", agent_command=agent_command, node_name="bench")
    bed.start()
    try:
        runtime = bed.runtime
        bridge = bridge_network(workdir)
        ours = [bed.new_pod(f"s{i}") for i in range(pods)]
        refs = [bed.new_pod(f"b{i}") for i in range(pods)]
        ref_results: dict[str, Any] = {}

        def bridge_add(pod: PodSandbox) -> None:
            ref_results[pod.name] = runtime.add_network_list(bridge, pod.runtime_conf())

        def bridge_del(pod: PodSandbox) -> None:
            runtime.del_network_list(bridge, pod.runtime_conf(), ref_results[pod.name])

        # Start-up cost of each binary alone (VERSION does no work).
        version = {"cniVersion": "1.0.0"}
        start_ours = [timed(runtime.exec_plugin, "contiv-cni", "VERSION", version, None)
                      for _ in range(20)]
        start_ref = [timed(runtime.exec_plugin, "bridge", "VERSION", version, None)
                     for _ in range(20)]

        assert bed.agent is not None
        cpu = CPU(bed.agent.pid)
        add, add_ref = [], []
        cpu_ours = [0.0, 0.0, 0.0]
        cpu_ref = 0.0
        for mine, ref in zip(ours, refs, strict=True):
            before = cpu.sample()
            add.append(timed(bed.add, mine))
            middle = cpu.sample()
            add_ref.append(timed(bridge_add, ref))
            after = cpu.sample()
            for i, v in enumerate(CPU.per_op(before, middle, pods)):
                cpu_ours[i] += v
            cpu_ref += (after[0] - middle[0]) / pods
        # Agent-side time per request (receipt to reply), as the pod manager logs it.
        agent_add = bed.agent_cni_times("ADD")
        event_add = bed.agent_event_times("Add Pod")
        delete, delete_ref = [], []
        for mine, ref in zip(ours, refs, strict=True):
            delete.append(timed(bed.delete, mine))
            delete_ref.append(timed(bridge_del, ref))
        agent_del = bed.agent_cni_times("DEL")

        crowd = [bed.new_pod(f"p{i}") for i in range(pods)]
        crowd_ref = [bed.new_pod(f"r{i}") for i in range(pods)]
        with ThreadPoolExecutor(parallel) as pool:
            before = cpu.sample()
            start = time.perf_counter()
            parallel_add = list(pool.map(lambda pod: timed(bed.add, pod), crowd))
            parallel_wall = (time.perf_counter() - start) * 1000
            cpu_parallel = CPU.per_op(before, cpu.sample(), pods)
            agent_parallel_add = bed.agent_cni_times("ADD")[len(agent_add):]
            parallel_del = list(pool.map(lambda pod: timed(bed.delete, pod), crowd))
            # The same crowd for the reference plugins.
            before = cpu.sample()
            start = time.perf_counter()
            parallel_ref = list(pool.map(lambda pod: timed(bridge_add, pod), crowd_ref))
            parallel_ref_wall = (time.perf_counter() - start) * 1000
            cpu_parallel_ref = CPU.per_op(before, cpu.sample(), pods)[0]
            list(pool.map(bridge_del, crowd_ref))
        # A node booting or a deployment scaling: 30 pods at once, until all have their result.
        burst = [bed.new_pod(f"q{i}") for i in range(BURST)]
        with ThreadPoolExecutor(BURST) as pool:
            start = time.perf_counter()
            list(pool.map(bed.add, burst))
            burst_s = time.perf_counter() - start
            list(pool.map(bed.delete, burst))
        # A bare interpreter's start in the same place, for scale.
        bare = [timed(in_ns, bed.node_ns, sys.executable, "-c", "pass") for _ in range(20)]
        bare_s = [timed(in_ns, bed.node_ns, sys.executable, "-S", "-c", "pass")
                  for _ in range(20)]
        # CPU of the `ip netns exec` wrapper itself, charged to every plugin exec above: that
        # of `ip netns exec <node> true` less that of `true` alone.
        exec_ns, exec_ns_cpu = children_cpu(lambda: timed(in_ns, bed.node_ns, "true"))
        _, true_cpu = children_cpu(lambda: timed(sh, "true"))
        exec_ns_cpu -= true_cpu
        leftover = bed.records()
        if leftover:
            raise RuntimeError(f"pods left after DEL: {leftover}")
    finally:
        bed.close()
    shutil.rmtree(workdir, ignore_errors=True)  # kept when the run failed, for its logs

    return {
        "pods": pods,
        "parallel": parallel,
        "add_p50_ms": percentile(add, 0.5),
        "add_p99_ms": percentile(add, 0.99),
        "del_p50_ms": percentile(delete, 0.5),
        "del_p99_ms": percentile(delete, 0.99),
        "parallel_add_p50_ms": percentile(parallel_add, 0.5),
        "parallel_add_p99_ms": percentile(parallel_add, 0.99),
        "parallel_del_p50_ms": percentile(parallel_del, 0.5),
        "agent_add_p50_ms": percentile(agent_add, 0.5),
        "agent_add_p99_ms": percentile(agent_add, 0.99),
        "agent_del_p50_ms": percentile(agent_del, 0.5),
        "agent_add_event_p50_ms": percentile(event_add, 0.5),
        "agent_parallel_add_p50_ms": percentile(agent_parallel_add, 0.5),
        "bridge_add_p50_ms": percentile(add_ref, 0.5),
        "bridge_add_p99_ms": percentile(add_ref, 0.99),
        "bridge_del_p50_ms": percentile(delete_ref, 0.5),
        "exec_version_p50_ms": percentile(start_ours, 0.5),
        "bridge_exec_version_p50_ms": percentile(start_ref, 0.5),
        "add_ratio_to_bridge": percentile(add, 0.5) / percentile(add_ref, 0.5),
        "parallel_ratio": percentile(parallel_add, 0.5) / percentile(add, 0.5),
        "del_ratio": percentile(delete, 0.5) / percentile(add, 0.5),
        "agent_del_ratio": percentile(agent_del, 0.5) / percentile(agent_add, 0.5),
        "exec_version_ratio_to_bridge": percentile(start_ours, 0.5) / percentile(start_ref, 0.5),
        "burst_30_s": burst_s,
        "bridge_parallel_add_p50_ms": percentile(parallel_ref, 0.5),
        "bridge_parallel_add_p99_ms": percentile(parallel_ref, 0.99),
        "bridge_parallel_ratio": percentile(parallel_ref, 0.5) / percentile(add_ref, 0.5),
        "parallel_to_bridge_ratio": percentile(parallel_add, 0.5) / percentile(parallel_ref, 0.5),
        # CPU of the contiv-cni process per ADD, without the `ip netns exec` wrapper's.
        "plugin_cpu_ms": max(0.0, cpu_ours[0] - exec_ns_cpu),
        "netns_exec_cpu_ms": exec_ns_cpu,
        # CPU per ADD (ms): the plugin process(es) and the agent (user, system).
        "cpu_add_binary_ms": cpu_ours[0],
        "cpu_add_agent_user_ms": cpu_ours[1],
        "cpu_add_agent_sys_ms": cpu_ours[2],
        "cpu_parallel_add_binary_ms": cpu_parallel[0],
        "cpu_parallel_add_agent_user_ms": cpu_parallel[1],
        "cpu_parallel_add_agent_sys_ms": cpu_parallel[2],
        "bridge_cpu_add_ms": cpu_ref,
        "bridge_cpu_parallel_add_ms": cpu_parallel_ref,
        # Wall time of the whole parallel run per ADD, and the CPU bound of 2 cores for it.
        "parallel_wall_per_add_ms": parallel_wall / pods,
        "bridge_parallel_wall_per_add_ms": parallel_ref_wall / pods,
        "cores": float(os.cpu_count() or 1),
        "python_start_p50_ms": percentile(bare, 0.5),
        "python_s_start_p50_ms": percentile(bare_s, 0.5),
        "netns_exec_true_p50_ms": percentile(exec_ns, 0.5),
    }


def print_table(r: dict[str, float]) -> None:
    rows = [
        ("ADD, sequential", r["add_p50_ms"], r["add_p99_ms"], r["bridge_add_p50_ms"],
         r["bridge_add_p99_ms"]),
        ("DEL, sequential", r["del_p50_ms"], r["del_p99_ms"], r["bridge_del_p50_ms"], None),
        (f"ADD, {int(r['parallel'])} in parallel", r["parallel_add_p50_ms"],
         r["parallel_add_p99_ms"], None, None),
        (f"DEL, {int(r['parallel'])} in parallel", r["parallel_del_p50_ms"], None, None, None),
        (f"bridge, {int(r['parallel'])} in parallel", None, None, r["bridge_parallel_add_p50_ms"],
         r["bridge_parallel_add_p99_ms"]),
        ("  run's wall time per ADD", r["parallel_wall_per_add_ms"], None,
         r["bridge_parallel_wall_per_add_ms"], None),
        ("ADD, agent side only", r["agent_add_p50_ms"], r["agent_add_p99_ms"], None, None),
        ("  of which the AddPod event", r["agent_add_event_p50_ms"], None, None, None),
        ("ADD, agent side, in parallel", r["agent_parallel_add_p50_ms"], None, None, None),
        ("DEL, agent side only", r["agent_del_p50_ms"], None, None, None),
        ("exec of VERSION (start-up)", r["exec_version_p50_ms"], None,
         r["bridge_exec_version_p50_ms"], None),
        ("exec of python -c pass", r["python_start_p50_ms"], None, None, None),
        ("exec of python -S -c pass", r["python_s_start_p50_ms"], None, None, None),
        ("exec of true (ip netns exec)", r["netns_exec_true_p50_ms"], None, None, None),
    ]

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    print(f"{int(r['pods'])} pods; times in ms, end to end through the plugin binary")
    print(f"{'':30} {'contiv p50':>11} {'contiv p99':>11} {'bridge p50':>11} {'bridge p99':>11}")
    for name, a, b, c, d in rows:
        print(f"{name:30} {cell(a):>11} {cell(b):>11} {cell(c):>11} {cell(d):>11}")
    print(f"CPU per ADD, ms             {'sequential':>11} {'parallel':>11} "
          f"{'bridge seq':>11} {'bridge par':>11}")
    for name, seq, par, bseq, bpar in (
        ("plugin process(es)", r["cpu_add_binary_ms"], r["cpu_parallel_add_binary_ms"],
         r["bridge_cpu_add_ms"], r["bridge_cpu_parallel_add_ms"]),
        ("agent, user", r["cpu_add_agent_user_ms"], r["cpu_parallel_add_agent_user_ms"], None, None),
        ("agent, system (kernel)", r["cpu_add_agent_sys_ms"], r["cpu_parallel_add_agent_sys_ms"],
         None, None),
    ):
        print(f"{name:30} {cell(seq):>11} {cell(par):>11} {cell(bseq):>11} {cell(bpar):>11}")
    print(f"ADD p50 ratio to bridge+host-local: {r['add_ratio_to_bridge']:.2f}x")
    print("key                            value   goal")
    for key, goal in (("add_ratio_to_bridge", "<= 1.3"), ("exec_version_ratio_to_bridge", "<= 1.5"),
                      ("plugin_cpu_ms", "<= 3"), ("parallel_to_bridge_ratio", "<= 1.0"),
                      ("burst_30_s", "<= 1.0"), ("parallel_ratio", "-"),
                      ("bridge_parallel_ratio", "-"), ("del_ratio", "<= 1"),
                      ("agent_del_ratio", "<= 1")):
        print(f"{key:30} {r[key]:6.2f}   {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--agent-cmd", help="command running the agent (default: apps.vswitch)")
    args = parser.parse_args()
    results = run(args.pods, args.parallel,
                  shlex.split(args.agent_cmd) if args.agent_cmd else None)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
