"""contiv on the lab's Kubernetes cluster: the images the committed manifest names, and whether
contiv is up on every node (nodes Ready, a Ready vswitch pod on each, KSR and etcd Ready)."""

from __future__ import annotations

import time
from typing import Any

import yaml

from apps.lab.kube.cluster import REPO, KubeLab
from apps.lab.kube.state import KubeLabError

MANIFEST = REPO / "deploy" / "contiv.yaml"
CONTIV_NS = "kube-system"


def contiv_images(tag: str = "") -> list[str]:
    """The images ``deploy/contiv.yaml`` names (``make images`` builds them)."""
    found: list[str] = []
    for doc in yaml.safe_load_all(MANIFEST.read_text()):
        spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec", {})
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            image = c["image"] if not tag else c["image"].rsplit(":", 1)[0] + ":" + tag
            if image not in found:
                found.append(image)
    return found


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def node_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def contiv_pods(lab: KubeLab) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = lab.get_json("pods", "-n", CONTIV_NS,
                                               "-l", "app.kubernetes.io/part-of=contiv").get("items", [])
    return items


def contiv_gaps(lab: KubeLab) -> list[str]:
    """What keeps contiv from being up on every node (empty when it is)."""
    gaps: list[str] = []
    nodes = {n["metadata"]["name"]: n for n in lab.get_json("nodes").get("items", [])}
    pods = contiv_pods(lab)
    for name in lab.state.nodes:
        if name not in nodes:
            gaps.append(f"node {name} not registered")
        elif not node_ready(nodes[name]):
            gaps.append(f"node {name} NotReady")
        on_node = [p for p in pods if p["spec"].get("nodeName") == name
                   and p["metadata"]["labels"].get("app.kubernetes.io/name") == "contiv-vswitch"]
        if not any(pod_ready(p) and not p["metadata"].get("deletionTimestamp") for p in on_node):
            gaps.append(f"contiv-vswitch on {name} not Ready")
    for app in ("contiv-ksr", "contiv-etcd"):
        mine = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/name") == app]
        if not any(pod_ready(p) and not p["metadata"].get("deletionTimestamp") for p in mine):
            gaps.append(f"{app} not Ready")
    return gaps


def wait_for(what: str, check: Any, timeout_s: float, interval_s: float = 0.5) -> Any:
    """Poll ``check()`` (returns a falsy 'done' or a truthy list/str of what is missing)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        last = check()
        if not last:
            return last
        if time.monotonic() > deadline:
            raise KubeLabError(f"{what} not done after {timeout_s:g}s: {last}")
        time.sleep(interval_s)
