"""``lab.json`` under concurrent ``contiv-lab`` commands: no lost update, no shared temp file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from apps.lab.state import LabState, NodeState, PodState


def _state(root: Path) -> LabState:
    state = LabState(name="wlab", root=root)
    state.nodes["node1"] = NodeState(name="node1", index=1, netns="wlab-n1", ip="192.168.16.1/24",
                                     agent_pid=100)
    state.next_node_index = 2
    state.save()
    return state


def test_two_commands_keep_each_others_changes(tmp_path: Path) -> None:
    _state(tmp_path)
    apply_cmd = LabState.load(tmp_path)
    restart_cmd = LabState.load(tmp_path)
    assert apply_cmd is not None and restart_cmd is not None
    # 'node restart-agent' saves a new PID while 'apply' is creating a pod from the old state.
    restart_cmd.nodes["node1"].agent_pid = 200
    restart_cmd.save()
    apply_cmd.pods["default/a"] = PodState(name="a", namespace="default", node="node1",
                                           netns="wlab-p1", container_id="c1", ip="10.1.1.2")
    apply_cmd.next_pod_index = 2
    apply_cmd.save()

    final = LabState.load(tmp_path)
    assert final is not None
    assert final.nodes["node1"].agent_pid == 200
    assert set(final.pods) == {"default/a"} and final.next_pod_index == 2
    # The saving process sees the other's change too, and a later save keeps it.
    assert apply_cmd.nodes["node1"].agent_pid == 200
    apply_cmd.pods["default/a"].ip = "10.1.1.3"
    apply_cmd.save()
    final = LabState.load(tmp_path)
    assert final is not None and final.nodes["node1"].agent_pid == 200
    assert final.pods["default/a"].ip == "10.1.1.3"


def test_a_removal_is_kept_and_counters_never_go_back(tmp_path: Path) -> None:
    _state(tmp_path)
    remover, adder = LabState.load(tmp_path), LabState.load(tmp_path)
    assert remover is not None and adder is not None
    del remover.nodes["node1"]
    remover.save()
    adder.nodes["node2"] = NodeState(name="node2", index=2, netns="wlab-n2", ip="192.168.16.2/24")
    adder.next_node_index = 3
    adder.save()
    final = LabState.load(tmp_path)
    assert final is not None and set(final.nodes) == {"node2"} and final.next_node_index == 3


def _add_pods(root: str, worker: int) -> None:
    for i in range(15):
        state = LabState.load(Path(root))
        assert state is not None
        key = f"default/w{worker}-{i}"
        state.pods[key] = PodState(name=key, namespace="default", node="node1",
                                   netns=f"wlab-{worker}-{i}", container_id=key)
        state.save()
        state.round_robin += 1
        state.save()


def test_concurrent_processes_lose_no_pod(tmp_path: Path) -> None:
    _state(tmp_path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_pods, args=(str(tmp_path), w)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    final = LabState.load(tmp_path)
    assert final is not None
    assert len(final.pods) == 60
    assert not list(tmp_path.glob("*.tmp"))
