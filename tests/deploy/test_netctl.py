"""contiv-netctl against a real 2-node lab (etcd, KSR, two agents, four pods): every subcommand's
table and JSON, ``check`` catching a planted duplicate IP and an orphan allocation, an agent
down, etcd down, and ``contiv-lab env``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.lab import env as lab_env
from apps.lab import etcd as lab_etcd
from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.pods import Kubelet

pytestmark = pytest.mark.netns

LAB = f"nc{os.getpid() % 100000}"
ROOT = Path(__file__).resolve().parents[2]


def pod(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": {"app": name.split("-")[0]}},
            "spec": {"nodeName": node, "containers": [{"name": "echo", "image": "lab/echo",
                                                       "ports": [{"containerPort": 8080}]}]}}


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo"},
           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "web-from-clients", "namespace": "demo"},
          "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                "ports": [{"port": 8080}]}]}}


def wait_for(check: Any, timeout_s: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (generous deadline: loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = Lab(LAB)
    try:
        lab.up(2)
        Kubelet(lab).apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
                            pod("web-1", "node1"), pod("web-2", "node2"),
                            pod("client-1", "node1"), pod("client-2", "node2"), SERVICE, POLICY])
        yield lab
    finally:
        Lab(LAB).down()


def netctl(lab: Lab, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PYTHONPATH=str(ROOT), **lab_env.exports(lab.state))
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "apps.netctl.main", *args], capture_output=True,
                          text=True, env=full, timeout=60)


def as_json(lab: Lab, *args: str) -> Any:
    out = netctl(lab, "-o", "json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def etcdctl(lab: Lab, *args: str) -> None:
    netns.run(lab_etcd.etcdctl(lab.state, *args), netns=lab.state.underlay_ns)


def test_lab_env_exports_what_netctl_needs(lab: Lab) -> None:
    out = subprocess.run([sys.executable, "-m", "apps.lab.main", "--name", LAB, "env"], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True)
    assert f"export ETCD_ENDPOINTS={lab.state.etcd_endpoint}" in out.stdout
    assert f"export ETCDCTL_CERT={lab.state.pki / 'netctl.crt'}" in out.stdout
    assert f"export CONTIV_NETCTL_NETNS={lab.state.underlay_ns}" in out.stdout
    assert f"node1=http://127.0.0.1:9999;netns={LAB}-n1" in out.stdout
    shell = subprocess.run(["sh", "-c", out.stdout + '\necho "$CONTIV_AGENTS"'], capture_output=True, text=True)
    assert shell.stdout.strip() == lab_env.exports(lab.state)["CONTIV_AGENTS"]


def test_nodes_table_and_json(lab: Lab) -> None:
    out = netctl(lab, "nodes")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "IP", "MGMT", "AGENT", "NOT-OK"]
    assert any(line.split()[1:5] == ["node1", "192.168.16.1/24", "192.168.16.1", "ready"] for line in lines[1:])
    nodes = as_json(lab, "nodes")
    assert sorted(n["name"] for n in nodes) == ["node1", "node2"]
    assert {n["id"] for n in nodes} == {1, 2}
    assert all(n["agent"] == "ready" for n in nodes)


def test_pods_show_ip_interfaces_and_node(lab: Lab) -> None:
    pods = {p["name"]: p for p in as_json(lab, "pods")}
    assert set(pods) == {"web-1", "web-2", "client-1", "client-2"}
    for key, state in lab.state.pods.items():
        row = pods[key.split("/")[1]]
        assert row["ip"] == state.ip and row["node"] == state.node
        assert row["interface"] == "eth0" and row["host_interface"].startswith("cv")
    only = as_json(lab, "pods", "--node", "node2")
    assert sorted(p["name"] for p in only) == ["client-2", "web-2"]
    table = netctl(lab, "pods", "--node", "node1").stdout.splitlines()
    assert table[0].split()[:5] == ["NAMESPACE", "NAME", "NODE", "IP", "INTERFACE"]
    assert len(table) == 3 and all(" node1 " in line for line in table[1:])


def test_ipam_plan_allocations_and_free_count(lab: Lab) -> None:
    plans = {p["node"]: p for p in as_json(lab, "ipam")}
    assert set(plans) == {"node1", "node2"}
    assert plans["node1"]["pod_subnet"] != plans["node2"]["pod_subnet"]
    for plan in plans.values():
        assert plan["allocated"] == 2 and plan["free"] == 250  # a /24 less network, broadcast, gateway
    one = as_json(lab, "ipam", "--node", "node1")
    ips = {a["name"]: a["ip"] for a in one["allocations"]}
    assert ips == {"web-1": lab.state.pods["demo/web-1"].ip, "client-1": lab.state.pods["demo/client-1"].ip}
    table = netctl(lab, "ipam", "--node", "node1").stdout
    assert f"pod subnet {plans['node1']['pod_subnet']}" in table and "250 free" in table
    assert yaml.safe_load(netctl(lab, "-o", "yaml", "ipam", "--node", "node1").stdout)["node"] == "node1"


def test_scheduler_dump_status_history(lab: Lab) -> None:
    dump = as_json(lab, "scheduler", "dump", "--node", "node1")
    ip = lab.state.pods["demo/web-1"].ip
    keys = [v["key"] for v in dump]
    addr = next(k for k in keys if k.endswith(f"/eth0/{ip}/32"))
    status = as_json(lab, "scheduler", "status", addr, "--node", "node1")
    assert status[0]["state"] == "configured" and status[0]["descriptor"] == "linux-address"
    history = as_json(lab, "scheduler", "history", "--node", "node1")
    assert history[0]["kind"] == "resync" and any("web-1" in t["description"] for t in history)
    table = netctl(lab, "scheduler", "history").stdout.splitlines()
    assert table[0].split()[:3] == ["NODE", "SEQ", "KIND"]
    assert {line.split()[0] for line in table[1:]} == {"node1", "node2"}
    assert netctl(lab, "scheduler", "status").returncode == 2


def test_events_show_the_controller_history(lab: Lab) -> None:
    events = as_json(lab, "events", "--node", "node2")
    assert events[0]["name"] == "DB Resync"
    assert any(e["name"] == "Add Pod" and "demo/web-2" in e["description"] for e in events)
    assert {e["node"] for e in as_json(lab, "events")} == {"node1", "node2"}


def test_services_show_frontends_and_backends_as_each_agent_sees_them(lab: Lab) -> None:
    web = {lab.state.pods["demo/web-1"].ip, lab.state.pods["demo/web-2"].ip}

    def both_agents_have_web() -> list[dict[str, Any]]:
        got = [s for s in as_json(lab, "services") if s["name"] == "web"]
        return got if len(got) == 2 and all(len(s["ports"][0]["backends"]) == 2 for s in got) else []

    services = wait_for(both_agents_have_web)
    assert {s["node"] for s in services} == {"node1", "node2"}
    port = services[0]["ports"][0]
    assert port["frontends"][0]["port"] == 80 and port["frontends"][0]["kind"] == "cluster-ip"
    assert {b["ip"] for b in port["backends"]} == web
    cluster_ip = port["frontends"][0]["ip"]
    table = netctl(lab, "services", "--node", "node2").stdout.splitlines()
    assert table[0].split() == ["NODE", "NAMESPACE", "NAME", "PORT", "FRONTENDS", "BACKENDS"]
    row = next(line for line in table if " web " in line)
    assert f"{cluster_ip}:80/tcp (cluster-ip)" in row and all(f"{ip}:8080" in row for ip in web)


def test_policies_show_what_selects_each_pod(lab: Lab) -> None:
    def web_1_selected() -> list[dict[str, Any]]:
        rows = as_json(lab, "policies", "--pod", "demo/web-1")
        return rows if rows and rows[0]["policies"] else []

    rows = wait_for(web_1_selected)
    assert rows[0]["node"] == "node1" and rows[0]["policies"] == ["demo/web-from-clients"]
    assert rows[0]["ingress"].endswith("rules)") and rows[0]["egress"] == "open"
    full = as_json(lab, "policies", "--node", "node2")
    assert full[0]["policies"] == ["demo/web-from-clients"] and full[0]["bad_policies"] == {}
    table = netctl(lab, "policies").stdout.splitlines()
    assert table[0].split() == ["NODE", "POD", "IP", "POLICIES", "INGRESS", "EGRESS"]
    client = next(line for line in table if "demo/client-2" in line)
    assert client.split()[3:] == ["-", "open", "open"]
    missing = netctl(lab, "policies", "--pod", "demo/nope")
    assert missing.returncode == 5 and "no pod 'demo/nope'" in missing.stderr


def test_check_is_clean_then_catches_a_duplicate_ip_and_an_orphan(lab: Lab) -> None:
    out = netctl(lab, "check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert {r["check"] for r in as_json(lab, "check")} == {
        "node-ids", "node-subnets", "agents-ready", "duplicate-ips", "orphan-allocations", "ksr-synced"}
    taken = lab.state.pods["demo/web-1"].ip
    ghost = "/vnf-agent/node2/ipam/allocations/demo/ghost"
    orphan = "/vnf-agent/node1/ipam/allocations/demo/gone"
    etcdctl(lab, "put", ghost, json.dumps({"pod_name": "ghost", "pod_namespace": "demo", "ip_address": taken}))
    etcdctl(lab, "put", orphan, json.dumps({"pod_name": "gone", "pod_namespace": "demo",
                                            "ip_address": "10.1.1.200"}))
    try:
        out = netctl(lab, "check")
        assert out.returncode == 1
        assert f"IP {taken} is used by demo/ghost, demo/web-1" in out.stdout
        assert "allocation on node1: 10.1.1.200 for demo/gone: no such pod" in out.stdout
        failed = [r for r in json.loads(netctl(lab, "-o", "json", "check").stdout) if not r["ok"]]
        assert {r["check"] for r in failed} == {"duplicate-ips", "orphan-allocations"}
    finally:
        etcdctl(lab, "del", ghost)
        etcdctl(lab, "del", orphan)
    assert netctl(lab, "check").returncode == 0


def test_agent_down_is_reported_and_exit_status_says_so(lab: Lab) -> None:
    lab.kill_agent("node2")
    try:
        out = netctl(lab, "nodes")
        assert out.returncode == 4
        assert "node2" in out.stdout and "unreachable" in out.stdout
        assert "the agent of node2 at http://127.0.0.1:9999" in out.stderr and "unreachable" in out.stderr
        checked = netctl(lab, "check")
        assert checked.returncode == 1 and "agent of node2 is unreachable" in checked.stdout
        assert netctl(lab, "events", "--node", "node2").returncode == 4
    finally:
        lab.start_agent("node2")
        lab.wait_agent_ready("node2")


def test_unknown_node_and_missing_etcd_settings(lab: Lab) -> None:
    out = netctl(lab, "pods", "--node", "node9")
    assert out.returncode == 5 and "no node 'node9' (nodes: node1, node2)" in out.stderr
    out = netctl(lab, "nodes", env={"ETCD_ENDPOINTS": ""})
    assert out.returncode == 3 and "set ETCD_ENDPOINTS" in out.stderr
    out = netctl(lab, "nodes", env={"CONTIV_AGENTS": "node1"})
    assert out.returncode == 2 and "bad agent 'node1'" in out.stderr


def test_etcd_down_is_a_clear_error(lab: Lab) -> None:
    lab.etcd_stop()
    try:
        out = netctl(lab, "--timeout", "1", "pods")
        assert out.returncode == 3
        assert f"etcd at {lab.state.etcd_endpoint} is unreachable" in out.stderr
        assert out.stdout == ""
    finally:
        lab.etcd_start()
