"""The pod-tuning example: built and installed from its own directory, enabled in a real lab
through ``contiv-lab up --agent-config``, and checked inside the pods' namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.nodes import AGENT_PLUGINS, HANDLER_ORDER
from apps.lab.pods import Kubelet, probe

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pod-tuning-plugin"
LAB = f"plug{os.getpid() % 100000}"
PREFIX = "tuning.example.com"
TUNING_PREFIX = "config/pod-tuning/v1/"
T = TypeVar("T")

ENABLED = {
    "plugins": [*AGENT_PLUGINS, "pod-tuning"],
    "controller": {"handler_order": [*HANDLER_ORDER, "pod-tuning"]},
    "pod-tuning": {"min_mtu": 1280, "max_mtu": 9000},
}


def pod(name: str, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if annotations:
        meta["annotations"] = {f"{PREFIX}/{k}": v for k, v in annotations.items()}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": "node1", "containers": [{"name": "echo", "image": "lab/echo"}]}}


def wait_for(check: Callable[[], T], what: str, timeout_s: float = 60.0) -> T:
    """Poll ``check`` until it returns something true (generous deadline: the machine is shared)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, built and installed from its own directory into a fresh site directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), "."],
        cwd=EXAMPLE, check=True, capture_output=True, timeout=300,
    )
    assert list(target.glob("contiv_pod_tuning_plugin-*.dist-info/entry_points.txt"))
    return target


@pytest.fixture(scope="module")
def lab(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    overlay = tmp_path_factory.mktemp("cfg") / "agent.yaml"
    overlay.write_text(yaml.safe_dump(ENABLED))
    saved = os.environ.get("PYTHONPATH")
    # The lab's agents inherit the environment: they find the installed plugin through it.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    try:
        up = subprocess.run([sys.executable, "-m", "apps.lab.main", "--name", LAB, "up", "--nodes", "1",
                             "--agent-config", str(overlay)], capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        yield Lab(LAB)
    finally:
        Lab(LAB).down()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def agent_get(lab: Lab, path: str) -> Any:
    out = netns.run([sys.executable, "-m", "apps.lab.http_get", f"http://127.0.0.1:9999{path}"],
                    netns=lab.node("node1").netns, check=False, timeout=20)
    return json.loads(out.stdout) if out.returncode == 0 else None


def agent_text(lab: Lab, path: str) -> str:
    out = netns.run([sys.executable, "-m", "apps.lab.http_get", f"http://127.0.0.1:9999{path}"],
                    netns=lab.node("node1").netns, check=False, timeout=20)
    return out.stdout


def in_pod(lab: Lab, name: str, *cmd: str) -> str:
    return netns.run(list(cmd), netns=lab.state.pods[f"default/{name}"].netns).stdout.strip()


def sysctl(lab: Lab, name: str, key: str) -> str:
    return in_pod(lab, name, "cat", "/proc/sys/" + key.replace(".", "/"))


def mtu(lab: Lab, name: str) -> int:
    return int(in_pod(lab, name, "cat", "/sys/class/net/eth0/mtu"))


def tuning_report(lab: Lab, name: str) -> dict[str, Any] | None:
    report = agent_get(lab, "/pod-tuning") or {}
    found: dict[str, Any] | None = report.get("pods", {}).get(f"default/{name}")
    return found


def applied(lab: Lab, name: str, count: int) -> bool:
    found = tuning_report(lab, name)
    states = [v["state"] for v in (found or {}).get("values", {}).values()]
    return len(states) == count and all(s == "configured" for s in states)


def tuning_keys(lab: Lab) -> list[str]:
    return [v["key"] for v in agent_get(lab, f"/scheduler/dump?view=nb&key-prefix={TUNING_PREFIX}") or []]


@pytest.fixture(scope="module")
def pods(lab: Lab) -> Lab:
    kubelet = Kubelet(lab)
    kubelet.add_pod(pod("plain"))
    kubelet.add_pod(pod("tuned", sysctls="net.ipv4.tcp_syncookies=0, net.ipv4.ip_default_ttl=33",
                        mtu="1400"))
    # Kubernetes state reaches the agent after the ADD (the lab writes the pod's manifest then):
    # the plugin applies the tuning when the annotations arrive.
    wait_for(lambda: applied(lab, "tuned", 3), "the tuned pod's three values")
    return lab


def test_annotated_pod_gets_its_sysctls_and_mtu(pods: Lab) -> None:
    assert sysctl(pods, "tuned", "net.ipv4.tcp_syncookies") == "0"
    assert sysctl(pods, "tuned", "net.ipv4.ip_default_ttl") == "33"
    assert mtu(pods, "tuned") == 1400
    report = tuning_report(pods, "tuned")
    assert report is not None and report["errors"] == [] and report["mtu"] == 1400
    assert report["sysctls"] == {"net.ipv4.tcp_syncookies": "0", "net.ipv4.ip_default_ttl": "33"}
    metrics = agent_text(pods, "/metrics")
    assert "pod_tuning_tuned_pods 1.0" in metrics
    # The pod is wired as before: it reaches the other pod.
    assert all(r["ping"] and r["tcp"] for r in probe(pods))


def test_pod_without_annotations_gets_nothing(pods: Lab) -> None:
    # Its Kubernetes state was processed before the tuned pod's (events are ordered).
    assert sysctl(pods, "plain", "net.ipv4.tcp_syncookies") == "1"
    assert sysctl(pods, "plain", "net.ipv4.ip_default_ttl") == "64"
    assert mtu(pods, "plain") == 1450  # ipnet's MTU, untouched
    assert tuning_report(pods, "plain") == {"netns": str(netns.NETNS_DIR / pods.state.pods["default/plain"].netns),
                                            "sysctls": {}, "mtu": None, "values": {}, "errors": []}
    assert all("plain" not in key for key in tuning_keys(pods))


def test_wrong_values_are_reported_and_the_add_succeeds(pods: Lab) -> None:
    added = Kubelet(pods).add_pod(pod(
        "wrong", mtu="abc",
        sysctls="net.ipv4.no_such_thing=1,kernel.hostname=x,net.ipv4.tcp_syncookies,"
                "net.ipv4.ip_default_ttl=0,net.ipv4.tcp_syncookies=0"))
    assert added.ip  # the ADD succeeded
    report = wait_for(lambda: (r := tuning_report(pods, "wrong")) and len(r["errors"]) == 5 and r,
                      "the wrong pod's five errors")
    errors = "\n".join(report["errors"])
    assert f"annotation {PREFIX}/mtu: 'abc' is not an integer" in errors
    assert "'net.ipv4.no_such_thing=1': no such sysctl" in errors
    assert "'kernel.hostname=x': not a net.* sysctl name" in errors
    assert "'net.ipv4.tcp_syncookies': expected name=value" in errors
    # ip_default_ttl=0 passes the plugin's checks and the kernel refuses it (EINVAL).
    assert "net.ipv4.ip_default_ttl: refused by the dataplane" in errors
    assert sysctl(pods, "wrong", "net.ipv4.tcp_syncookies") == "0"  # the valid one still applied
    assert sysctl(pods, "wrong", "net.ipv4.ip_default_ttl") == "64"
    # The refusal failed a best-effort event: the healing resync that follows leaves the refused
    # value out (it stays reported) and succeeds, so the agent stays ready.
    refused = f"{quote_ns(report['netns'])}/{'net.ipv4.ip_default_ttl'}"
    wait_for(lambda: not any(k.endswith(refused) for k in tuning_keys(pods)), "the refused value left out")
    assert "net.ipv4.ip_default_ttl: refused by the dataplane" in "\n".join(tuning_report(pods, "wrong")["errors"])
    log = (pods.root / "logs" / "agent-node1.log").read_text()
    assert f"pod default/wrong: annotation {PREFIX}/mtu: 'abc' is not an integer" in log
    assert "net.ipv4.ip_default_ttl refused by the dataplane" in log
    assert "pod_tuning_annotation_errors_total 4.0" in agent_text(pods, "/metrics")
    ready = agent_get(pods, "/readiness")
    assert ready and ready["ready"], ready
    Kubelet(pods).delete_pod("default", "wrong")


def test_values_go_with_the_pods_delete(pods: Lab) -> None:
    Kubelet(pods).add_pod(pod("short", sysctls="net.ipv4.ip_default_ttl=40", mtu="1300"))
    wait_for(lambda: applied(pods, "short", 2), "the short-lived pod's values")
    netns_file = str(netns.NETNS_DIR / pods.state.pods["default/short"].netns)
    assert any(quote_ns(netns_file) in key for key in tuning_keys(pods))
    Kubelet(pods).delete_pod("default", "short")
    assert tuning_report(pods, "short") is None
    assert not any(quote_ns(netns_file) in key for key in tuning_keys(pods))
    statuses = agent_get(pods, f"/scheduler/status?key-prefix={TUNING_PREFIX}") or []
    assert not any(quote_ns(netns_file) in s["key"] for s in statuses if s["state"] != "removed")


def quote_ns(path: str) -> str:
    return path.replace("/", "%2F")


def test_agent_restart_changes_nothing(pods: Lab) -> None:
    before = (sysctl(pods, "tuned", "net.ipv4.tcp_syncookies"), sysctl(pods, "tuned", "net.ipv4.ip_default_ttl"),
              mtu(pods, "tuned"), mtu(pods, "plain"))
    pods.kill_agent("node1", sig=15)
    pods.start_agent("node1")
    pods.wait_agent_ready("node1")
    wait_for(lambda: applied(pods, "tuned", 3), "the tuned pod's values after the restart")
    after = (sysctl(pods, "tuned", "net.ipv4.tcp_syncookies"), sysctl(pods, "tuned", "net.ipv4.ip_default_ttl"),
             mtu(pods, "tuned"), mtu(pods, "plain"))
    assert after == before
    # The first resync found every tuning value right: no operation touched one.
    history = agent_text(pods, "/scheduler/txn-history?format=text")
    assert "resync" in history
    assert [line for line in history.splitlines() if TUNING_PREFIX in line] == []


def test_disabled_in_yaml_pods_stay_wired(pods: Lab) -> None:
    pods.state.agent_overlay = {}
    pods.state.save()
    pods.kill_agent("node1", sig=15)
    pods.start_agent("node1")
    pods.wait_agent_ready("node1")
    assert agent_get(pods, "/pod-tuning") is None  # the plugin is not running
    assert all(r["ping"] and r["tcp"] for r in probe(pods))
    # The veth's owner takes the MTU back; the plugin's sysctls stay as they are.
    wait_for(lambda: mtu(pods, "tuned") == 1450, "ipnet's MTU on the formerly tuned pod")
    assert mtu(pods, "plain") == 1450
