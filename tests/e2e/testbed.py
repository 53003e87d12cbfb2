"""A one-node testbed: a "node" namespace with etcd and a real ``contiv-agent``, pods as namespaces.

Pods are wired exactly as a container runtime does it: by executing ``contiv-cni`` (through
:class:`~apps.cni.runtime.CNIRuntime`, inside the node namespace). Used by the end-to-end tests
and ``bench/cni.py`` (a test helper, so it lives under ``tests/``, not in the product).
Everything it creates is named ``<prefix>-<tag>-*`` and removed by :meth:`NodeTestbed.close`,
which also runs after a failed start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from apps.certs.pki import write_set
from apps.cni.runtime import CNIRuntime, RuntimeConf, write_launcher
from core.etcdserver import EtcdServer, EtcdTLS
from plugins.linux.netns import namespace_path

REPO = Path(__file__).resolve().parents[2]
AGENT_PLUGINS = [
    "process", "service-label", "http", "health", "metrics", "logs", "kvdb", "kvscheduler", "controller",
    "linux", "nodesync", "ipam", "podmanager", "ipnet",
]
HANDLER_ORDER = ["nodesync", "ipam", "podmanager", "ipnet"]
AGENT_PORT = 9999


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def in_ns(netns: str, *argv: str, check: bool = True,
          timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", netns, *argv, check=check, timeout=timeout)


@dataclass
class PodSandbox:
    """A pod: its namespace and the identity the runtime passes to CNI."""

    name: str
    netns: str
    container_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    namespace: str = "default"
    result: dict[str, Any] | None = None

    @property
    def netns_path(self) -> str:
        return namespace_path(self.netns) or ""

    @property
    def ip(self) -> str:
        if not self.result or not self.result.get("ips"):
            raise LookupError(f"pod {self.name} has no address (no successful ADD)")
        return str(self.result["ips"][0]["address"]).split("/")[0]

    def runtime_conf(self) -> RuntimeConf:
        return RuntimeConf.for_pod(self.container_id, self.netns_path, self.name, self.namespace)


class NodeTestbed:
    """One node: namespace, etcd, agent process, CNI runtime; pods created on demand."""

    def __init__(
        self, workdir: Path, prefix: str = "cnie", tag: str | None = None,
        pod_subnet_prefix_len: int = 24, node_name: str = "e2e-node",
        agent_command: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.tag = tag or uuid.uuid4().hex[:6]
        self.prefix = f"{prefix}-{self.tag}"
        self.node_ns = f"{self.prefix}-node"
        self.node_name = node_name
        self.pod_subnet_prefix_len = pod_subnet_prefix_len
        #: How the agent is run (``--config <file>`` is appended).
        self.agent_command = agent_command or [sys.executable, "-m", "apps.vswitch.main"]
        self.socket_path = workdir / "run" / "cni.sock"
        self.etcd: EtcdServer | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.pods: dict[str, PodSandbox] = {}
        self._namespaces: list[str] = []
        bin_dir = workdir / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        write_launcher(bin_dir)
        self.runtime = CNIRuntime([bin_dir, "/usr/lib/cni"], runtime_netns=self.node_ns)

    # ---------------------------------------------------------------- lifecycle

    def start(self, timeout_s: float = 60.0) -> None:
        try:
            self._add_namespace(self.node_ns)
            write_set(self.workdir / "pki")
            self.etcd = EtcdServer(data_dir=self.workdir / "etcd", netns=self.node_ns,
                                   log_file=self.workdir / "etcd.log", tls=EtcdTLS.from_dir(self.workdir / "pki"))
            self.etcd.start(timeout_s=30)
            self.start_agent()
            self.wait_ready(timeout_s)
        except BaseException:
            self.close()
            raise

    def agent_config(self) -> dict[str, Any]:
        assert self.etcd is not None
        d = self.workdir
        return {
            "plugins": AGENT_PLUGINS,
            "http": {"address": "127.0.0.1", "port": AGENT_PORT},
            "kvdb": {**self.etcd.kvdb_config("agent"), "dial_timeout_s": 2.0, "op_timeout_s": 3.0},
            "controller": {
                "handler_order": HANDLER_ORDER,
                "dbwatcher": {"mirror_file": str(d / "mirror.sqlite")},
            },
            "ipam": {"state_file": str(d / "ipam.json"),
                     "pod_subnet_one_node_prefix_len": self.pod_subnet_prefix_len},
            "podmanager": {"socket_path": str(self.socket_path),
                           "records_file": str(d / "pods.json")},
        }

    def start_agent(self) -> None:
        assert self.etcd is not None
        config = self.workdir / "agent.yaml"
        config.write_text(yaml.safe_dump(self.agent_config()))
        env = dict(os.environ, ETCD_ENDPOINTS=self.etcd.endpoint, NODE_NAME=self.node_name,
                   PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(self.workdir / "agent.log", "ab") as log:
            self.agent = subprocess.Popen(
                ["ip", "netns", "exec", self.node_ns, *self.agent_command, "--config", str(config)],
                stdout=log, stderr=log, env=env, cwd=REPO, start_new_session=True,
            )

    def agent_log(self, tail: int = 40) -> str:
        path = self.workdir / "agent.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-tail:])

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.agent is not None and self.agent.poll() is not None:
                raise RuntimeError(
                    f"contiv-agent exited with {self.agent.returncode}:\n{self.agent_log()}"
                )
            ready = self.http_json("/readiness", check=False)
            if isinstance(ready, dict) and ready.get("ready") and self.socket_path.exists():
                return
            time.sleep(0.2)
        raise TimeoutError(f"contiv-agent not ready after {timeout_s} s:\n{self.agent_log()}")

    def kill_agent(self, sig: int = signal.SIGKILL) -> None:
        if self.agent is None:
            return
        if self.agent.poll() is None:
            os.killpg(self.agent.pid, sig)
            try:
                self.agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.agent.pid, signal.SIGKILL)
                self.agent.wait()
        self.agent = None

    def close(self) -> None:
        self.kill_agent(signal.SIGTERM)
        if self.etcd is not None:
            self.etcd.cleanup()
            self.etcd = None
        for name in reversed(self._namespaces):
            sh("ip", "netns", "del", name, check=False)
        self._namespaces.clear()

    # ---------------------------------------------------------------- helpers

    def _add_namespace(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def http_json(self, path: str, check: bool = True) -> Any:
        """GET the agent's REST ``path`` from inside the node namespace; parsed JSON.

        With ``check`` an unreachable agent or an HTTP error status raises; without, None.
        """
        code = ("import sys, urllib.request\n"
                "r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.read().decode())\n")
        out = in_ns(self.node_ns, sys.executable, "-c", code,
                    f"http://127.0.0.1:{AGENT_PORT}{path}", check=False)
        if out.returncode != 0 or not out.stdout.strip():
            if check:
                raise RuntimeError(f"GET {path} failed: {out.stderr.strip()[-300:]}")
            return None
        return json.loads(out.stdout)

    def records(self) -> dict[str, Any]:
        """The pod manager's records file (``namespace/name`` -> record), {} before any."""
        path = self.workdir / "pods.json"
        if not path.exists():
            return {}
        doc = json.loads(path.read_text())
        return {f"{p['namespace']}/{p['name']}": p for p in doc["pods"]}

    def agent_cni_times(self, op: str) -> list[float]:
        """Agent-side durations (ms) of successful CNI ``op`` (ADD/DEL/CHECK), from its log."""
        marker = f"CNI {op} "
        times = []
        for line in (self.workdir / "agent.log").read_text(errors="replace").splitlines():
            if marker in line and " done in " in line and line.endswith(" ms"):
                times.append(float(line.rsplit(" done in ", 1)[1][:-3]))
        return times

    def agent_event_times(self, event_name: str) -> list[float]:
        """Controller processing time (ms) of each event named ``event_name``, from its log."""
        names: dict[str, str] = {}
        times = []
        for line in (self.workdir / "agent.log").read_text(errors="replace").splitlines():
            if ">>>>> EVENT #" in line:
                number, _, rest = line.split(">>>>> EVENT #", 1)[1].partition(": ")
                names[number] = rest
            elif line.startswith("<<<<< EVENT #") and line.endswith(" ms"):
                number = line[len("<<<<< EVENT #"):].split(" ", 1)[0]
                if names.get(number, "").startswith(event_name):
                    times.append(float(line.rsplit(" done in ", 1)[1][:-3]))
        return times

    def new_pod(self, name: str) -> PodSandbox:
        pod = PodSandbox(name=name, netns=f"{self.prefix}-{name}")
        self._add_namespace(pod.netns)
        self.pods[name] = pod
        return pod

    def delete_pod_namespace(self, pod: PodSandbox) -> None:
        sh("ip", "netns", "del", pod.netns, check=False)
        if pod.netns in self._namespaces:
            self._namespaces.remove(pod.netns)

    def network(self, version: str = "1.0.0") -> dict[str, Any]:
        """The conflist a runtime would read from /etc/cni/net.d."""
        return {"cniVersion": version, "name": "contiv-k8s",
                "plugins": [{"type": "contiv-cni", "grpcServer": str(self.socket_path)}]}

    def add(self, pod: PodSandbox, version: str = "1.0.0") -> dict[str, Any]:
        pod.result = self.runtime.add_network_list(self.network(version), pod.runtime_conf())
        return pod.result

    def check(self, pod: PodSandbox, version: str = "1.0.0") -> None:
        assert pod.result is not None
        self.runtime.check_network_list(self.network(version), pod.runtime_conf(), pod.result)

    def delete(self, pod: PodSandbox, version: str = "1.0.0") -> None:
        self.runtime.del_network_list(self.network(version), pod.runtime_conf(), pod.result)
