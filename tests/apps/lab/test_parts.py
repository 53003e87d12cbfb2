"""The lab's parts picked by the state: runtime, dataplane, etcd endpoints (no lab is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.lab import etcd
from apps.lab.dataplane import DATAPLANES, dataplane_of
from apps.lab.errors import LabError
from apps.lab.runtime import RUNTIMES, podman, runtime_name, runtime_of
from apps.lab.state import LabState, NodeState


def test_the_runtime_follows_the_image(tmp_path: Path) -> None:
    state = LabState(name="plab", root=tmp_path)
    assert runtime_name(state) == "process"
    assert runtime_of(state).remove_all(state) == []  # processes die with the lab's PIDs
    state.image = "localhost/contiv-vswitch:t1"
    assert runtime_name(state) == "podman"
    assert set(RUNTIMES) == {"process", "podman"}


def test_an_unknown_dataplane_is_refused_by_name() -> None:
    with pytest.raises(LabError, match=r"unknown dataplane 'dpdk' \(known: linux, vpp\)"):
        dataplane_of("dpdk")
    assert sorted(DATAPLANES) == ["linux", "vpp"]


def test_each_dataplane_says_where_peers_reach_a_node() -> None:
    node = NodeState(name="node3", index=3, netns="plab-n3", ip="192.168.16.3/24")
    assert dataplane_of("linux").data_ip(node) == "192.168.16.3"
    assert dataplane_of("linux").agent_overlay(LabState(name="plab", root=Path("/nonexistent")), node, []) == {}
    assert dataplane_of("vpp").data_ip(node) == "192.168.17.3"


@pytest.mark.parametrize("members", [1, 3, 5])
def test_state_and_etcd_agree_on_the_endpoints(tmp_path: Path, members: int) -> None:
    state = LabState(name="plab", root=tmp_path, etcd_members=members)
    assert state.etcd_endpoint == etcd.endpoints(members)
    assert state.etcd_endpoint.split(",")[0] == "192.168.16.254:2379"


def test_podman_gets_the_repositorys_containers_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    # runc refuses the ulimits podman derives from the host: the lab's containers need this file.
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    assert podman.REPO_CONF.is_file(), podman.REPO_CONF
    assert podman.podman_env()["CONTAINERS_CONF"] == str(podman.REPO_CONF)
