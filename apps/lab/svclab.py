"""Lab commands around services: ``exec`` in a pod or node, ``probe --service``, waiting for agents.

``probe --service NS/NAME`` connects ``--count`` times to every address and port of the service
(each ClusterIP, the NodePort on every node address, ExternalIPs, LB IPs) from every pod and
from every node namespace, and reports which backends answered (see :mod:`apps.lab.svcprobe`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.errors import LabError
from apps.lab.observe import agent_get
from apps.lab.services import find_service


def exec_in(lab: Lab, cmd: list[str], pod: str | None = None, node: str | None = None) -> int:
    """Run ``cmd`` in a pod's (``NS/NAME`` or ``NAME`` in default) or a node's namespace."""
    cmd = cmd[1:] if cmd[:1] == ["--"] else cmd
    if not cmd:
        raise LabError("exec needs a command after --")
    if (pod is None) == (node is None):
        raise LabError("exec needs exactly one of POD or --node NODE")
    if node is not None:
        target = lab.node(node).netns
    else:
        assert pod is not None
        key = pod if "/" in pod else f"default/{pod}"
        found = lab.state.pods.get(key)
        if found is None:
            raise LabError(f"no pod {key} in the lab")
        target = found.netns
    return subprocess.run(["ip", "netns", "exec", target, *cmd], check=False).returncode


def service_targets(lab: Lab, namespace: str, name: str) -> list[str]:
    """``proto:ip:port`` of every address and port the service is reached at."""
    spec = find_service(lab.state, namespace, name).get("spec") or {}
    node_ips = [n.ip.split("/")[0] for n in sorted(lab.state.nodes.values(), key=lambda n: n.index)]
    vips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    targets: list[str] = []
    for port in spec.get("ports") or []:
        proto = str(port.get("protocol") or "TCP").lower()
        targets += [f"{proto}:{ip}:{port['port']}" for ip in [*vips, *(spec.get("externalIPs") or [])]]
        if port.get("nodePort"):
            targets += [f"{proto}:{ip}:{port['nodePort']}" for ip in node_ips]
    return targets


def probe_service(lab: Lab, namespace: str, name: str, count: int = 10, timeout_s: float = 2.0,
                  sources: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (source, target): ``{"from", "to", "answers", "failed", "seen_as"}``.

    ``sources`` picks pods (``ns/name``) and nodes (``node/<name>``); default: all of them.
    """
    targets = service_targets(lab, namespace, name)
    spaces = [(f"node/{n.name}", n.netns) for n in sorted(lab.state.nodes.values(), key=lambda n: n.index)]
    spaces += [(key, p.netns) for key, p in sorted(lab.state.pods.items()) if p.ip]
    if sources is not None:
        spaces = [s for s in spaces if s[0] in sources]
    rows: list[dict[str, Any]] = []
    for label, ns in spaces:
        out = netns.run([sys.executable, "-m", "apps.lab.svcprobe", "--count", str(count),
                         "--timeout", str(timeout_s), *targets], netns=ns, check=False, timeout=600)
        try:
            results = json.loads(out.stdout)
        except json.JSONDecodeError:
            raise LabError(f"service probe from {label} printed no JSON: {out.stderr.strip()[-300:]}") from None
        rows += [{"from": label, "to": t, **results[t]} for t in targets]
    return rows


def print_service_probe(rows: list[dict[str, Any]]) -> None:
    width = max((len(r["from"]) for r in rows), default=4)
    twidth = max((len(r["to"]) for r in rows), default=4)
    for r in rows:
        answers = " ".join(f"{pod.split('/')[-1]}:{n}" for pod, n in sorted(r["answers"].items()))
        failed = f"  failed:{r['failed']} {r['errors']}" if r["failed"] else ""
        print(f"{r['from']:<{width}}  -> {r['to']:<{twidth}}  {answers}{failed}")
    ok = sum(1 for r in rows if not r["failed"] and r["answers"])
    print(f"{ok}/{len(rows)} source/address pairs answered every time")


def agent_service(lab: Lab, node: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The agent's ``/contiv/v1/services/NS/NAME`` on ``node`` (None when unknown)."""
    return agent_get(lab.state, node, f"/contiv/v1/services/{namespace}/{name}")


def wait_service(lab: Lab, namespace: str, name: str, backends: int, timeout_s: float = 60.0) -> None:
    """Wait until every agent balances each port of the service over ``backends`` backends."""
    deadline = time.monotonic() + timeout_s
    pending = sorted(lab.state.nodes)
    while pending:
        body = agent_service(lab, pending[0], namespace, name)
        ports = (body or {}).get("ports") or []
        if ports and all(len(p.get("backends") or []) == backends for p in ports):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise LabError(f"{pending[0]} does not balance {namespace}/{name} over {backends} backends "
                           f"after {timeout_s:g}s: {body}")
        time.sleep(0.2)


def demo_services(lab: Lab, examples: Path) -> bool:
    """The demo's service part: wait for the example services, probe each from every pod/node."""
    ok = True
    for path in sorted(examples.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if not isinstance(obj, dict) or obj.get("kind") != "Service":
                continue
            meta = obj.get("metadata") or {}
            ns, name = meta.get("namespace", "default"), meta["name"]
            backends = int((meta.get("annotations") or {}).get("lab.contiv.io/expect-backends", "0"))
            if backends:
                wait_service(lab, ns, name, backends)
            print(f"== contiv-lab probe --service {ns}/{name} --count 6")
            rows = probe_service(lab, ns, name, count=6)
            print_service_probe(rows)
            ok = ok and all(r["answers"] and not r["failed"] for r in rows)
    return ok
