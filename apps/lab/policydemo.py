"""The policy part of ``contiv-lab demo``: apply ``examples/lab/policy/demo.yaml``, wait until
every agent has it, print the port matrix, and take the policies away again."""

from __future__ import annotations

import json
import time
from pathlib import Path

from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.errors import LabError
from apps.lab.manifests import delete_objects
from apps.lab.matrix import print_port_matrix, probe_matrix
from apps.lab.netns import python_module

DEMO = Path("policy") / "demo.yaml"


def agent_policies(lab: Lab, node: str) -> list[str] | None:
    """The policies the node's agent enforces (``GET /contiv/v1/policies``), or None."""
    out = netns.run(python_module("apps.lab.http_get", "http://127.0.0.1:9999/contiv/v1/policies"),
                    netns=lab.node(node).netns, check=False, timeout=30)
    try:
        policies = json.loads(out.stdout).get("policies")
    except (json.JSONDecodeError, AttributeError):
        return None
    return list(policies) if isinstance(policies, list) else None


def wait_policies(lab: Lab, keys: set[str], timeout_s: float = 60.0) -> None:
    """Wait until every agent enforces exactly ``keys`` (``ns/name``)."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, list[str] | None] = {}
    while time.monotonic() < deadline:
        seen = {n: agent_policies(lab, n) for n in lab.state.nodes}
        if all(v is not None and set(v) == keys for v in seen.values()):
            return
        time.sleep(0.2)
    raise LabError(f"the agents do not enforce {sorted(keys)} after {timeout_s:g}s: {seen}")


def demo_policy(lab: Lab, examples: Path) -> bool:
    """Show a policy taking effect; True when web pods answer only TCP from clients."""
    from apps.lab.pods import Kubelet, load_manifests

    path = examples / DEMO
    objects = load_manifests(path)
    keys = {f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in objects}
    print(f"== contiv-lab apply -f examples/lab/{DEMO}")
    for line in Kubelet(lab).apply(objects):
        print(line)
    wait_policies(lab, keys)
    print("== contiv-lab probe --ports 8080 --protocols tcp,udp")
    rows = probe_matrix(lab, [8080], ["tcp", "udp"])
    print_port_matrix(rows)
    to_web = [r for r in rows if r["to"].split("/")[1].startswith("web")]
    ok = all(r["ok"] == (r["protocol"] == "tcp" and "/client" in r["from"]) for r in to_web)
    print(f"== contiv-lab delete -f examples/lab/{DEMO}")
    for line in delete_objects(lab, objects):
        print(line)
    wait_policies(lab, set())
    return ok
