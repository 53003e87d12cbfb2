"""``contiv-lab up --kubernetes``: the lab on a real Kubernetes cluster.

* A real control plane (kube-apiserver, kube-controller-manager, kube-scheduler, and an etcd of
  its own, separate from contiv's) runs in the first node's network namespace, as on a kubeadm
  control-plane node: the API server listens on that node's address, port 6443.
* Each node (:class:`~apps.lab.kube.node.KubeNode`) runs Debian's containerd and a real kubelet;
  the first node is labelled ``node-role.kubernetes.io/control-plane``.
* Contiv is installed as a user installs it: the images of ``make images`` are imported into
  every node's containerd, and ``kubectl apply -f deploy/contiv.yaml`` (unmodified) does the rest.

Binaries: ``--kube-bin-dir`` or ``KUBE_BIN_DIR`` (kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet, kubectl), and the pause image archive ``pause-3.9.tar`` beside it in
``../images`` or at ``KUBE_PAUSE_IMAGE``. Nothing touches the host namespace's network: the
nodes and the underlay are namespaces named ``<lab>-*``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from apps.lab import netns
from apps.lab.kube import configs, pki
from apps.lab.kube.node import KubeNode, NodeError
from apps.lab.kube.state import KubeLabError, KubeLabState, KubeNodeState, find_binaries
from core.etcdserver import EtcdServer

REPO = Path(__file__).resolve().parents[3]
DEFAULT_ROOT = Path("/var/tmp/contiv-kubelab")
UNDERLAY = "192.168.16."
SERVICE_CIDR = "10.96.0.0/12"
CLUSTER_CIDR = "10.1.0.0/16"
API_PORT = 6443


class KubeLab:
    """A lab cluster of real Kubernetes nodes, identified by its name (the namespace prefix)."""

    def __init__(self, name: str = "klab", root: Path | None = None) -> None:
        self.name = name
        self.root = root or DEFAULT_ROOT / name
        self._state = KubeLabState.load(self.root)

    @property
    def state(self) -> KubeLabState:
        if self._state is None:
            raise KubeLabError(f"Kubernetes lab {self.name!r} is not up ({self.root})")
        return self._state

    @property
    def exists(self) -> bool:
        return self._state is not None

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def admin_conf(self) -> Path:
        return self.root / "admin.conf"

    def log(self, what: str) -> Path:
        path = self.root / "logs" / f"{what}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def node(self, name: str) -> KubeNode:
        st = self.state.nodes.get(name)
        if st is None:
            raise KubeLabError(f"no node {name!r} in lab {self.name!r} (nodes: {', '.join(self.state.nodes)})")
        return KubeNode(self.name, st.name, st.netns, st.ip, self.root / "nodes" / st.name)

    @property
    def control_plane(self) -> KubeNodeState:
        return next(iter(self.state.nodes.values()))

    @property
    def api_server(self) -> str:
        return f"https://{self.control_plane.ip}:{API_PORT}"

    # ------------------------------------------------------------------ up

    def up(self, nodes: int = 2, bin_dir: str | Path | None = None, images: Sequence[str] = (),
           aliases: Mapping[str, str] | None = None) -> None:
        """Underlay, nodes' namespaces, control plane, containerd and kubelet on every node,
        ``images`` (podman's) imported everywhere, each also named as ``aliases`` says (e.g. a
        test build under the tag the manifest names); returns once every node is registered."""
        if self.exists:
            raise KubeLabError(f"Kubernetes lab {self.name!r} is already up ({self.root}); run down first")
        if not 1 <= nodes <= 20:
            raise KubeLabError(f"--nodes must be between 1 and 20, got {nodes}")
        kube_bin, pause = find_binaries(bin_dir)
        self.down()  # what a crashed run left
        self._state = KubeLabState(name=self.name, root=self.root, bin_dir=kube_bin, pause_image=pause)
        self.state.save()
        try:
            netns.ns_add(self.underlay_ns)
            netns.run(["ip", "link", "add", "br0", "type", "bridge"], netns=self.underlay_ns)
            netns.run(["ip", "link", "set", "br0", "up"], netns=self.underlay_ns)
            for i in range(1, nodes + 1):
                self._make_node(i)
            self._pki()
            self._control_plane()
            tars = [pause] + [self.image_archive(img) for img in images]
            self.state.images = list(images)
            for name in self.state.nodes:
                self._start_runtime(name)
            for name in self.state.nodes:
                for tar in tars:
                    self.import_image(name, tar)
                for src, dst in (aliases or {}).items():
                    self.tag_image(name, src, dst)
                self.start_kubelet(name)
            self.wait_nodes_registered()
            self.kubectl("label", "node", self.control_plane.name, "node-role.kubernetes.io/control-plane=",
                         "--overwrite")
        finally:
            self.state.save()

    @property
    def underlay_ns(self) -> str:
        return f"{self.name}-u"

    def _make_node(self, index: int) -> None:
        name = f"node{index}"
        st = KubeNodeState(name=name, index=index, netns=f"{self.name}-n{index}", ip=f"{UNDERLAY}{index}")
        self.state.nodes[name] = st
        self.state.save()
        netns.ns_add(st.netns)
        netns.veth(st.netns, "eth0", self.underlay_ns, f"n{index}")
        netns.run(["ip", "link", "set", f"n{index}", "master", "br0"], netns=self.underlay_ns)
        netns.run(["ip", "addr", "add", f"{st.ip}/24", "dev", "eth0"], netns=st.netns)
        netns.run(["ip", "route", "add", "default", "via", f"{UNDERLAY}254"], netns=st.netns, check=False)
        node = self.node(name)
        node.create_cgroups()
        st.made_dirs = node.create_mount_ns()
        self.state.save()

    def _pki(self) -> None:
        d = self.pki
        cp = self.control_plane.ip
        pki.ensure_ca(d)
        pki.ensure_sa_key(d)
        pki.ensure_cert(d, "apiserver", "kube-apiserver", server=True,
                        ips=("10.96.0.1", cp, "127.0.0.1"),
                        dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                             "kubernetes.default.svc.cluster.local", "localhost"))
        pki.ensure_cert(d, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters")
        ca = d / "ca.crt"
        for user, cn, org in (("admin", "kubernetes-admin", "system:masters"),
                              ("controller-manager", "system:kube-controller-manager", ""),
                              ("scheduler", "system:kube-scheduler", "")):
            crt, key = pki.ensure_cert(d, user, cn, org=org)
            pki.kubeconfig(self.root / f"{user}.conf", self.api_server, ca, crt, key, user)
        for st in self.state.nodes.values():
            crt, key = pki.ensure_cert(d, f"kubelet-{st.name}", f"system:node:{st.name}", org="system:nodes")
            conf = self.node(st.name).path("/etc/kubernetes") / "kubelet.conf"
            pki.kubeconfig(conf, self.api_server, ca, crt, key, f"system:node:{st.name}")

    def _cp_spawn(self, what: str, cmd: list[str]) -> int:
        ns = namespace_file(self.control_plane.netns)
        with open(self.log(what), "ab") as out:
            proc = subprocess.Popen(["nsenter", f"--net={ns}", "--", *cmd], stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        return proc.pid

    def _control_plane(self) -> None:
        st = self.state
        d, b = self.pki, st.bin_dir
        etcd = EtcdServer(data_dir=self.root / "kube-etcd", host="127.0.0.1", client_port=2379, peer_port=2380,
                          netns=self.control_plane.netns, log_file=self.log("kube-etcd"))
        etcd.start(timeout_s=60)
        assert etcd.proc is not None
        st.etcd_pid = etcd.proc.pid
        st.apiserver_pid = self._cp_spawn("kube-apiserver", pki.apiserver_command(
            b / "kube-apiserver", d, "http://127.0.0.1:2379", "0.0.0.0", API_PORT, self.control_plane.ip,
            SERVICE_CIDR, "--service-node-port-range=30000-32767",
            f"--kubelet-client-certificate={d / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={d / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--v=1",
        ))
        st.save()
        self.wait_api(timeout_s=90)
        st.controller_manager_pid = self._cp_spawn("kube-controller-manager", [
            str(b / "kube-controller-manager"),
            f"--kubeconfig={self.root / 'controller-manager.conf'}",
            f"--authentication-kubeconfig={self.root / 'controller-manager.conf'}",
            f"--authorization-kubeconfig={self.root / 'controller-manager.conf'}",
            f"--service-account-private-key-file={d / 'sa.key'}", f"--root-ca-file={d / 'ca.crt'}",
            "--use-service-account-credentials=true", "--leader-elect=false",
            "--allocate-node-cidrs=true", f"--cluster-cidr={CLUSTER_CIDR}", "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--bind-address=127.0.0.1", "--secure-port=10257", "--profiling=false", "--v=1",
        ])
        st.scheduler_pid = self._cp_spawn("kube-scheduler", [
            str(b / "kube-scheduler"),
            f"--kubeconfig={self.root / 'scheduler.conf'}",
            f"--authentication-kubeconfig={self.root / 'scheduler.conf'}",
            f"--authorization-kubeconfig={self.root / 'scheduler.conf'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10259", "--profiling=false",
            "--v=1",
        ])
        st.save()

    def _start_runtime(self, name: str) -> None:
        node = self.node(name)
        st = self.state.nodes[name]
        toml = node.root / "containerd.toml"
        toml.write_text(configs.containerd_toml(node.root / "containerd"))
        st.containerd_pid = node.spawn(["containerd", "--config", str(toml)], self.log(f"containerd-{name}"))
        self.state.save()
        deadline = time.monotonic() + 60
        while True:
            if node.run(["ctr", "--address", configs.CONTAINERD_SOCKET, "version"], check=False).returncode == 0:
                return
            if not netns.pid_alive(st.containerd_pid) or time.monotonic() > deadline:
                raise KubeLabError(f"containerd of {name} did not start; see {self.log(f'containerd-{name}')}")
            time.sleep(0.2)

    def start_kubelet(self, name: str) -> None:
        node = self.node(name)
        st = self.state.nodes[name]
        if netns.pid_alive(st.kubelet_pid):
            return
        cfg = node.root / "kubelet.yaml"
        cfg.write_text(configs.kubelet_config(st.ip, node.cgroup_root, self.pki / "ca.crt"))
        st.kubelet_pid = node.spawn([
            str(self.state.bin_dir / "kubelet"), f"--config={cfg}",
            "--kubeconfig=/etc/kubernetes/kubelet.conf", f"--hostname-override={name}", f"--node-ip={st.ip}",
            "--root-dir=/var/lib/kubelet", f"--cert-dir={node.root / 'kubelet-pki'}", "--v=1",
        ], self.log(f"kubelet-{name}"))
        self.state.save()

    def start_runtime_and_kubelet(self, name: str) -> None:
        """containerd, then kubelet, of one node (after :func:`apps.lab.kube.failures.reboot`)."""
        self._start_runtime(name)
        self.start_kubelet(name)

    # ------------------------------------------------------------------ images

    def image_archive(self, image: str) -> Path:
        """A docker-archive of a podman image (``make images``), saved once per lab."""
        safe = image.replace("/", "_").replace(":", "_")
        tar = self.root / "images" / f"{safe}.tar"
        if not tar.exists():
            tar.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(["podman", "save", "--format", "docker-archive", "-o", str(tar), image],
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                tar.unlink(missing_ok=True)
                raise KubeLabError(f"podman save {image} failed: {proc.stderr.strip()} (run make images first)")
        return tar

    def import_image(self, name: str, tar: Path) -> None:
        out = self.node(name).run(["ctr", "--address", configs.CONTAINERD_SOCKET, "-n", "k8s.io", "images",
                                   "import", "--no-unpack", str(tar)], net=False, check=False, timeout=600)
        if out.returncode != 0:
            raise KubeLabError(f"importing {tar.name} into {name}'s containerd failed: {out.stderr.strip()}")

    def tag_image(self, name: str, src: str, dst: str) -> None:
        """Name an imported image ``dst`` too, in one node's containerd."""
        out = self.node(name).run(["ctr", "--address", configs.CONTAINERD_SOCKET, "-n", "k8s.io", "images",
                                   "tag", "--force", src, dst], net=False, check=False)
        if out.returncode != 0:
            raise KubeLabError(f"tagging {src} as {dst} in {name}'s containerd failed: {out.stderr.strip()}")

    def load_image(self, image: str) -> None:
        """Import another podman image into every node (a new tag for a rollout)."""
        tar = self.image_archive(image)
        for name in self.state.nodes:
            self.import_image(name, tar)
        self.state.images.append(image)
        self.state.save()

    # ------------------------------------------------------------------ API

    def kubectl_command(self, *args: str) -> list[str]:
        """The command line of kubectl as the cluster admin, run from the control-plane node's
        network namespace."""
        return ["nsenter", f"--net={namespace_file(self.control_plane.netns)}", "--",
                str(self.state.bin_dir / "kubectl"), f"--kubeconfig={self.admin_conf}", *args]

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """kubectl as the cluster admin."""
        proc = subprocess.run(self.kubectl_command(*args), capture_output=True, text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubeLabError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def wait_api(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
            if out.returncode == 0 and out.stdout.strip() == "ok":
                return
            if not netns.pid_alive(self.state.apiserver_pid):
                raise KubeLabError(f"kube-apiserver exited; see {self.log('kube-apiserver')}")
            if time.monotonic() > deadline:
                raise KubeLabError(f"kube-apiserver not ready after {timeout_s:g}s: {out.stderr.strip()}")
            time.sleep(0.3)

    def wait_nodes_registered(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            items = self.get_json("nodes").get("items", [])
            names = {n["metadata"]["name"] for n in items}
            if names >= set(self.state.nodes):
                return
            for name, st in self.state.nodes.items():
                if not netns.pid_alive(st.kubelet_pid):
                    raise KubeLabError(f"kubelet of {name} exited; see {self.log(f'kubelet-{name}')}")
            if time.monotonic() > deadline:
                raise KubeLabError(f"nodes {sorted(set(self.state.nodes) - names)} did not register "
                                   f"in {timeout_s:g}s")
            time.sleep(0.3)

    # ------------------------------------------------------------------ down

    def save_logs(self, dest: Path) -> Path:
        """Copy the lab's logs (control plane, containerd, kubelet) and every node's pod logs
        (``/var/log/pods``: contiv's agents, KSR, etcd) to ``dest``."""
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        if (self.root / "logs").exists():
            shutil.copytree(self.root / "logs", dest / "lab")
        if self._state is not None:
            for name in self.state.nodes:
                pods = self.node(name).path("/var/log/pods")
                if pods.exists():
                    shutil.copytree(pods, dest / f"pods-{name}", symlinks=False, ignore_dangling_symlinks=True)
        return dest

    def down(self) -> list[str]:
        """Remove everything this lab made (by its state file, or by name after a crash)."""
        removed: list[str] = []
        state = KubeLabState.load(self.root)
        if state is not None:
            pids = [p for p in (state.scheduler_pid, state.controller_manager_pid, state.apiserver_pid,
                                state.etcd_pid) if p]
            netns.kill_pids([p for p in pids if netns.pid_alive(p)])
            nodes = [(KubeNode(self.name, st.name, st.netns, st.ip, self.root / "nodes" / st.name), st)
                     for st in state.nodes.values()]
            # Every node's processes die before any node's mount points go: removing a host
            # directory that is a mount point in another node's namespace unmounts it there, and
            # that node's kubelet, still running, would then write into the host's directory.
            for node, _ in nodes:
                try:
                    node.kill_all()
                except NodeError as err:
                    removed.append(f"(left: {err})")
            for node, st in nodes:
                try:
                    removed += node.destroy(st.made_dirs)
                except NodeError as err:
                    removed.append(f"(left: {err})")
        else:
            nodes_dir = self.root / "nodes"
            for d in sorted(nodes_dir.iterdir()) if nodes_dir.exists() else []:
                index = d.name.removeprefix("node")
                node = KubeNode(self.name, d.name, f"{self.name}-n{index}", "", d)
                removed += node.destroy()
        removed += netns.remove_lab(self.name + "-", self.root)
        self._state = None
        return removed


def namespace_file(name: str) -> str:
    from plugins.linux.netns import namespace_path

    return str(namespace_path(name))
