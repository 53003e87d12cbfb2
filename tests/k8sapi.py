"""A real kube-apiserver (KUBE_BIN_DIR) with its own etcd, on loopback, for the KSR tests.

:class:`RealKubernetes` offers what the KSR tests use of the HTTP fake (``tests/ksrfake``):
``apply(resource, obj)`` (status included: pods' IPs, nodes' addresses), ``delete``,
``write_kubeconfig``; and :meth:`RealKubernetes.compact` compacts the API server's etcd to its
head, so that a watch re-opened from any version seen so far gets 410 Gone (the watch cache is
off, so watches are served from etcd and compaction reaches them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apps.lab.kube import pki
from core.etcdserver import EtcdServer, free_port

KINDS = {"namespaces": "Namespace", "pods": "Pod", "services": "Service", "endpoints": "Endpoints",
         "endpointslices": "EndpointSlice", "networkpolicies": "NetworkPolicy", "nodes": "Node"}
API_VERSIONS = {"endpointslices": "discovery.k8s.io/v1", "networkpolicies": "networking.k8s.io/v1"}


def bin_dir() -> Path | None:
    d = os.environ.get("KUBE_BIN_DIR")
    return Path(d) if d and (Path(d) / "kube-apiserver").exists() else None


class RealKubernetes:
    """kube-apiserver v1.28 + etcd on 127.0.0.1, admin access through kubectl."""

    def __init__(self, kube_bin: Path) -> None:
        self.bin = kube_bin
        self.dir = Path(tempfile.mkdtemp(prefix="contiv-kapi-"))
        self.port = free_port()
        self.etcd = EtcdServer(data_dir=self.dir / "etcd", log_file=self.dir / "etcd.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = self.dir / "admin.conf"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        d = self.dir / "pki"
        pki.ensure_sa_key(d)
        pki.ensure_cert(d, "apiserver", "kube-apiserver", server=True, ips=("127.0.0.1", "10.96.0.1"))
        crt, key = pki.ensure_cert(d, "admin", "kubernetes-admin", org="system:masters")
        pki.kubeconfig(self.admin, self.url, d / "ca.crt", crt, key, "admin")
        self.etcd.start(timeout_s=30)
        with open(self.dir / "apiserver.log", "ab") as log:
            self.proc = subprocess.Popen(pki.apiserver_command(
                self.bin / "kube-apiserver", d, self.etcd.url, "127.0.0.1", self.port, "127.0.0.1", "10.96.0.0/12",
                "--authorization-mode=RBAC", "--watch-cache=false", "--enable-priority-and-fairness=false",
                "--disable-admission-plugins=ServiceAccount",  # no controller-manager makes accounts
            ), stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 90
        while self.kubectl("get", "--raw", "/readyz", check=False).stdout.strip() != "ok":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kube-apiserver did not start: {(self.dir / 'apiserver.log').read_text()[-2000:]}")
            time.sleep(0.3)
        # The namespaces a fresh API server makes itself (kube-system, ...) stay; tests use their own.

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.etcd.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([str(self.bin / "kubectl"), f"--kubeconfig={self.admin}", *args],
                             capture_output=True, text=True, input=input, timeout=60)
        if check and out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out

    def write_kubeconfig(self, path: Path) -> Path:
        shutil.copy(self.admin, path)
        return path

    # ------------------------------------------------------------------ what the fake offers

    def apply(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update the object (server-side apply), then its status when it has one."""
        body = json.loads(json.dumps(obj))
        body.setdefault("apiVersion", API_VERSIONS.get(resource, "v1"))
        body.setdefault("kind", KINDS[resource])
        meta = body["metadata"]
        meta.pop("resourceVersion", None)
        status = body.pop("status", None)
        deleting = meta.pop("deletionTimestamp", None)
        if resource == "services":  # one ClusterIP field is enough for the real API server
            body["spec"].pop("clusterIPs", None)
        if resource == "pods":  # the fake takes containers without an image; the API does not
            for c in body["spec"].get("containers", []):
                c.setdefault("image", "registry.k8s.io/pause:3.9")
        out = json.loads(self.kubectl("apply", "--server-side", "--force-conflicts", "-o", "json",
                                      "-f", "-", input=json.dumps(body)).stdout)
        if status and resource in ("pods", "nodes"):
            ns = ["-n", meta["namespace"]] if meta.get("namespace") else []
            out = json.loads(self.kubectl("patch", resource, meta["name"], *ns, "--subresource=status",
                                          "--type=merge", "-o", "json", "-p", json.dumps({"status": status})).stdout)
        if deleting and resource == "pods":  # terminating: a finalizer keeps it while it is deleted
            ns = ["-n", meta["namespace"]]
            self.kubectl("patch", "pods", meta["name"], *ns, "--type=merge",
                         "-p", json.dumps({"metadata": {"finalizers": ["contiv.io/test"]}}))
            self.kubectl("delete", "pods", meta["name"], *ns, "--wait=false")
        return dict(out)

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        ns = ["-n", namespace] if namespace else []
        if resource == "pods":
            self.kubectl("patch", "pods", name, *ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                         check=False)
        self.kubectl("delete", resource, name, *ns, "--grace-period=0", "--force", "--wait=false")

    def compact(self) -> int:
        """Compact the API server's etcd at its current revision (returns it)."""
        env = dict(os.environ, ETCDCTL_API="3")
        status = subprocess.run(["etcdctl", f"--endpoints={self.etcd.url}", "endpoint", "status", "-w", "json"],
                                capture_output=True, text=True, env=env, check=True, timeout=30)
        revision = int(json.loads(status.stdout)[0]["Status"]["header"]["revision"])
        subprocess.run(["etcdctl", f"--endpoints={self.etcd.url}", "compact", str(revision)],
                       capture_output=True, text=True, env=env, check=True, timeout=30)
        return revision
