"""The kubelet stand-in: pods as namespaces, wired by executing ``contiv-cni`` as a runtime does.

For each Pod: create its namespace, start the echo workload in it, run the CNI ADD with the
runtime's environment and network config on stdin, and record the pod IP in the pod's status
(a manifest in the directory KSR reflects).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from apps.cni import binary as cni_build
from apps.lab import netns
from apps.lab.cluster import Lab
from apps.lab.errors import LabError
from apps.lab.manifests import with_name_label
from apps.lab.netns import python_module
from apps.lab.services import default_service, sync_endpoints
from apps.lab.state import PodState, remove_manifest, write_manifest

ECHO_PORT = 8080
CNI_VERSION = "1.0.0"
CNI_PATH = "/usr/lib/cni"


def cni_binary() -> list[str]:
    return [str(cni_build.cni_binary(build=True))]


def network_config(socket_path: Path) -> dict[str, Any]:
    return {"cniVersion": CNI_VERSION, "name": "contiv-lab", "type": "contiv-cni",
            "grpcServer": str(socket_path)}


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """Every object in a YAML file (multi-document, ``List`` kinds expanded)."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError) as err:
        raise LabError(f"cannot read manifests from {path}: {err}") from err
    objects: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc:
            raise LabError(f"{path}: document {i + 1} is not a Kubernetes object (no 'kind')")
        if doc["kind"] == "List":
            objects.extend(doc.get("items") or [])
        else:
            objects.append(doc)
    return objects


def container_ports(obj: dict[str, Any]) -> list[str]:
    """The echo workload's port specs for a Pod manifest: each ``containerPort`` once (``PORT`` or
    ``PORT/sctp``), 8080 when the manifest declares none."""
    specs: dict[int, str] = {}
    for container in (obj.get("spec") or {}).get("containers") or []:
        for port in (container or {}).get("ports") or []:
            number = (port or {}).get("containerPort")
            if not isinstance(number, int) or not 0 < number < 65536:
                raise LabError(f"pod {_key(obj)[1]}: containerPort {number!r} is not a port number")
            sctp = str(port.get("protocol") or "TCP").upper() == "SCTP"
            if sctp or number not in specs:
                specs[number] = f"{number}/sctp" if sctp else str(number)
    return list(specs.values()) or [str(ECHO_PORT)]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise LabError(f"a {obj.get('kind')} has no metadata.name")
    return str(meta.get("namespace") or "default"), str(name)


class Kubelet:
    """Creates and deletes pods of a :class:`Lab`."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.state = lab.state

    # ------------------------------------------------------------------ apply

    def apply(self, objects: Iterable[dict[str, Any]],
              report: Callable[[str], None] | None = None) -> list[str]:
        """Create what the manifests describe; returns one line per object created.

        Each line also goes to ``report`` as soon as its object exists. An object that fails
        does not stop the others: after the last one, a :class:`LabError` lists what failed
        (and how many were created).
        """
        done: list[str] = []
        failed: list[str] = []
        for obj in objects:
            try:
                line = self._apply_one(obj)
            except LabError as err:
                ns, name = _key(obj)
                line = f"FAILED {str(obj.get('kind')).lower()}/{ns}/{name}: {err}"
                failed.append(line)
            else:
                done.append(line)
            if report is not None:
                report(line)
        if failed:
            raise LabError(f"{len(failed)} of {len(done) + len(failed)} objects failed "
                           f"({len(done)} created): " + "; ".join(failed))
        return done

    def _apply_one(self, obj: dict[str, Any]) -> str:
        kind = obj.get("kind")
        ns, name = _key(obj)
        if kind == "Pod":
            pod = self.add_pod(obj)
            return f"pod/{ns}/{name} on {pod.node}: {pod.ip}"
        if kind == "Namespace":
            write_manifest(self.state, f"namespace-{name}.yaml", with_name_label(obj))
            return f"namespace/{name}"
        if kind == "Node":
            raise LabError("nodes are made with 'contiv-lab node add', not with apply")
        if kind == "Service":
            svc = default_service(obj, self.state)
            write_manifest(self.state, f"service-{ns}-{name}.yaml", svc)
            sync_endpoints(self.state)
            return f"service/{ns}/{name}: {services_summary(svc)}"
        # Services, EndpointSlices, NetworkPolicies...: handed to KSR as they are.
        write_manifest(self.state, f"{str(kind).lower()}-{ns}-{name}.yaml", obj)
        return f"{str(kind).lower()}/{ns}/{name}"

    def _schedule(self, obj: dict[str, Any]) -> str:
        wanted = (obj.get("spec") or {}).get("nodeName")
        if wanted:
            self.lab.node(str(wanted))
            return str(wanted)
        nodes = sorted(self.state.nodes.values(), key=lambda n: n.index)
        if not nodes:
            raise LabError("the lab has no nodes")
        node = nodes[self.state.round_robin % len(nodes)]
        self.state.round_robin += 1
        return node.name

    def add_pod(self, obj: dict[str, Any]) -> PodState:
        ns, name = _key(obj)
        key = f"{ns}/{name}"
        if key in self.state.pods:
            return self.state.pods[key]
        ports = container_ports(obj)
        node = self._schedule(obj)
        index = self.state.next_pod_index
        self.state.next_pod_index += 1
        container_id = hashlib.sha256(f"{self.state.name}/{key}/{index}".encode()).hexdigest()
        pod = PodState(name=name, namespace=ns, node=node, netns=f"{self.state.name}-p{index}",
                       container_id=container_id, ports=ports)
        netns.ns_add(pod.netns)
        self.state.pods[key] = pod
        self.state.save()
        port_args = [arg for spec in ports for arg in ("--port", spec)]
        pod.echo_pid = netns.spawn(python_module("apps.lab.echo", *port_args, "--name", key),
                                   pod.netns, self.state.log_path(f"echo-{pod.netns}"))
        # The API server has the pod (labels, no IP yet) before the kubelet runs it: policies
        # selecting it can be known to the agent when the CNI ADD arrives.
        write_manifest(self.state, self._manifest_name(pod), self._pod_status(obj, pod))
        try:
            result = self.cni("ADD", pod)
        except LabError as err:
            # As a runtime does: DEL after a failed ADD (the agent may have kept a record or
            # an address of the cut ADD, e.g. when it crashed meanwhile).
            try:
                self.delete_pod(ns, name)
            except LabError as cleanup:
                raise LabError(f"{err}; the DEL after it failed too: {cleanup}") from err
            raise
        ips = [ip["address"].split("/")[0] for ip in result.get("ips", [])]
        if not ips:
            self.delete_pod(ns, name)
            raise LabError(f"CNI ADD for {key} returned no IP: {result}")
        pod.ip = ips[0]
        self.state.save()
        self._wait_serving(pod, key)  # as a readiness probe: the workload answers before "Ready"
        write_manifest(self.state, self._manifest_name(pod), self._pod_status(obj, pod))
        self._sync_endpoints()
        return pod

    def _wait_serving(self, pod: PodState, key: str, timeout_s: float = 30.0) -> None:
        """Until the pod's echo workload says it serves (its log's "serving" line); the CNI ADD
        of the static binary can finish before the workload's interpreter has bound its ports."""
        log = self.state.log_path(f"echo-{pod.netns}")
        deadline = time.monotonic() + timeout_s
        while f"echo {key}: serving" not in log.read_text(errors="replace"):
            if not netns.pid_alive(pod.echo_pid):
                raise LabError(f"the workload of pod {key} exited; see {log}")
            if time.monotonic() > deadline:
                raise LabError(f"the workload of pod {key} does not serve after {timeout_s:g}s; see {log}")
            time.sleep(0.02)

    def _sync_endpoints(self, terminating: frozenset[str] = frozenset()) -> None:
        sync_endpoints(self.state, terminating)

    @staticmethod
    def _manifest_name(pod: PodState) -> str:
        return f"pod-{pod.namespace}-{pod.name}.yaml"

    def _pod_status(self, obj: dict[str, Any], pod: PodState) -> dict[str, Any]:
        node = self.lab.node(pod.node)
        out: dict[str, Any] = json.loads(json.dumps(obj))
        out.setdefault("metadata", {}).setdefault("namespace", pod.namespace)
        out.setdefault("spec", {})["nodeName"] = pod.node
        out["status"] = {"phase": "Pending", "hostIP": node.ip.split("/")[0]} if not pod.ip else {
            "phase": "Running",
            "hostIP": node.ip.split("/")[0],
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        return out

    def cni(self, command: str, pod: PodState) -> dict[str, Any]:
        """Execute ``contiv-cni`` in the pod's node namespace exactly as a runtime does."""
        node = self.lab.node(pod.node)
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": str(netns.NETNS_DIR / pod.netns),
            "CNI_IFNAME": "eth0",
            "CNI_PATH": CNI_PATH,
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
                        f"K8S_POD_INFRA_CONTAINER_ID={pod.container_id}",
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        }
        conf = json.dumps(network_config(self.state.node_dir(pod.node) / "cni.sock"))
        cmd = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *cni_binary()]
        out = netns.run(cmd, netns=node.netns, check=False, input=conf, timeout=90)
        if out.returncode != 0:
            raise LabError(f"CNI {command} for {pod.namespace}/{pod.name} failed: "
                           f"{out.stdout.strip() or out.stderr.strip()}")
        if command != "ADD":
            return {}
        try:
            result: dict[str, Any] = json.loads(out.stdout)
            return result
        except json.JSONDecodeError as err:
            raise LabError(f"CNI ADD printed no JSON: {out.stdout!r}") from err

    # ------------------------------------------------------------------ delete

    def delete_pod(self, namespace: str, name: str, cni: bool = True) -> None:
        key = f"{namespace}/{name}"
        pod = self.state.pods.get(key)
        if pod is None:
            raise LabError(f"no pod {key} in the lab")
        errors = []
        self._sync_endpoints(frozenset({key}))  # terminating: served, not ready
        if cni and pod.node in self.state.nodes:
            try:
                self.cni("DEL", pod)
            except LabError as err:
                errors.append(str(err))
        if pod.echo_pid:
            netns.kill_pids([pod.echo_pid])
        netns.ns_delete(pod.netns)
        remove_manifest(self.state, self._manifest_name(pod))
        del self.state.pods[key]
        self.state.save()
        self._sync_endpoints()
        if errors:
            raise LabError("; ".join(errors))


def services_summary(svc: dict[str, Any]) -> str:
    """``ClusterIP 10.96.0.10 80/TCP->8080 nodePort 30080`` for apply's output."""
    spec = svc.get("spec") or {}
    ports = ", ".join(f"{p.get('port')}/{p.get('protocol')}->{p.get('targetPort')}"
                      + (f" nodePort {p['nodePort']}" if p.get("nodePort") else "") for p in spec.get("ports") or [])
    return f"{spec.get('type')} {spec.get('clusterIP', '')} {ports}".strip()


def probe(lab: Lab, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """Ping and TCP from every pod to every other pod; one row per ordered pair."""
    pods = sorted(lab.state.pods.values(), key=lambda p: (p.namespace, p.name))
    rows: list[dict[str, Any]] = []
    for src in pods:
        targets = [p for p in pods if p is not src and p.ip]
        if not targets:
            continue
        out = netns.run([sys.executable, "-m", "apps.lab.probe", "--port", str(ECHO_PORT),
                         "--timeout", str(timeout_s),
                         *(f"{t.ip}:{t.ports[0].split('/')[0] if t.ports else ECHO_PORT}" for t in targets)],
                        netns=src.netns, check=False, timeout=60)
        try:
            results = {r["to"]: r for r in json.loads(out.stdout)}
        except json.JSONDecodeError:
            results = {}
        for dst in targets:
            r = results.get(dst.ip, {})
            rows.append({"from": f"{src.namespace}/{src.name}", "to": f"{dst.namespace}/{dst.name}",
                         "ping": bool(r.get("ping")), "tcp": bool(r.get("tcp"))})
    return rows
