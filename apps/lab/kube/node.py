"""One Kubernetes node of the lab: a network namespace plus a private mount namespace.

The node's network namespace holds its NIC (``eth0`` on the lab's underlay bridge); hostNetwork
pods, containerd and kubelet live in it. Its mount namespace (a persistent one, bound to a file,
made with ``unshare --mount=FILE --propagation slave``) bind-mounts per-node directories over the
host paths that kubelet, containerd and a CNI plugin use, so that manifests' ``hostPath`` volumes
stay unchanged and the host's own directories are never written. Its cgroups live under
``/<cgroup_root>`` (kubelet's ``cgroupRoot``), so two kubelets never share ``kubepods``.

Everything runs through ``nsenter --mount=<file> --net=<netns>``; :meth:`KubeNode.destroy` kills
every process of the node (its network namespace and its cgroup tree), then drops both
namespaces, the cgroups and the directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from apps.lab import netns
from plugins.linux.netns import NETNS_RUN_DIR, namespace_path

#: Host paths each node gets its own copy of (a bind mount of a per-node directory).
NODE_PATHS = (
    "/etc/cni/net.d", "/opt/cni/bin", "/var/lib/kubelet", "/var/log/pods", "/var/log/containers",
    "/var/lib/cni", "/run/containerd", NETNS_RUN_DIR, "/run/contiv", "/var/lib/contiv", "/var/etcd",
    "/etc/kubernetes",
)
CGROUP_FS = Path("/sys/fs/cgroup")


class NodeError(RuntimeError):
    """A node operation failed (the message names the node and what failed)."""


def _dirname(host_path: str) -> str:
    return host_path.strip("/").replace("/", "-")


class KubeNode:
    """The namespaces, directories and processes of one node."""

    def __init__(self, lab: str, name: str, netns_name: str, ip: str, root: Path) -> None:
        self.lab = lab
        self.name = name
        self.netns = netns_name
        self.ip = ip
        self.root = root
        self.ns_dir = root / "ns"
        self.mnt = self.ns_dir / "mnt"
        self.cgroup_root = f"contiv-lab-{lab}-{name}"

    # ------------------------------------------------------------------ namespaces

    def path(self, host_path: str) -> Path:
        """The per-node directory that the node sees at ``host_path``."""
        return self.root / "fs" / _dirname(host_path)

    def create_mount_ns(self) -> list[str]:
        """Make the mount namespace; returns host directories created as mount points (to remove)."""
        made: list[str] = []
        self.ns_dir.mkdir(parents=True, exist_ok=True)
        # A namespace file can only be bound under a private mount.
        netns.run(["mount", "--bind", str(self.ns_dir), str(self.ns_dir)])
        netns.run(["mount", "--make-private", str(self.ns_dir)])
        self.mnt.touch()
        netns.run(["unshare", f"--mount={self.mnt}", "--propagation", "slave", "true"])
        for host_path in NODE_PATHS:
            src = self.path(host_path)
            src.mkdir(parents=True, exist_ok=True)
            target = Path(host_path)
            if not target.exists():
                # An empty mount point (the host's content is never written); removed at down.
                missing = target
                while not missing.parent.exists():
                    missing = missing.parent
                target.mkdir(parents=True)
                made.append(str(missing))
            self.run(["mount", "--bind", str(src), host_path], net=False)
        # /sys of the node's network namespace (its /sys/class/net), as ``ip netns exec`` does.
        # The cgroup tree is moved over from the host's /sys (kubelet and runc need it).
        hold = self.root / "cgroup-hold"
        hold.mkdir(exist_ok=True)
        self.run(["sh", "-c", f"mount --rbind {CGROUP_FS} {hold} && mount -t sysfs sysfs /sys "
                              f"&& mount --move {hold} {CGROUP_FS}"])
        # Inside the node every mount is shared, as on a systemd host: kubelet's HostToContainer
        # volumes (the agent's view of the runtime's pod namespaces) need a shared or slave
        # source. The host's own mounts are private here, so nothing propagates back to it.
        self.run(["mount", "--make-rshared", "/"], net=False)
        return made

    def create_cgroups(self) -> None:
        for ctrl in self._controllers():
            (ctrl / self.cgroup_root).mkdir(exist_ok=True)

    def nsenter(self, cmd: Sequence[str], net: bool = True) -> list[str]:
        full = ["nsenter", f"--mount={self.mnt}"]
        if net:
            full.append(f"--net={namespace_path(self.netns)}")
        return [*full, "--", *cmd]

    def run(self, cmd: Sequence[str], net: bool = True, check: bool = True, timeout: float = 60.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the node (its mount and, with ``net``, network namespace)."""
        return netns.run(self.nsenter(cmd, net), check=check, timeout=timeout, input=input)

    def spawn(self, cmd: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
        """Start a detached process in the node; returns its PID (nsenter execs: the same PID)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(self.nsenter(cmd), stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        return proc.pid

    # ------------------------------------------------------------------ processes

    def _controllers(self) -> list[Path]:
        if not CGROUP_FS.exists():
            return []
        return [p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink()
                and (p / "cgroup.procs").exists()]

    def cgroup_pids(self) -> set[int]:
        """Every process in the node's cgroup tree (its pods' containers)."""
        pids: set[int] = set()
        for ctrl in self._controllers():
            base = ctrl / self.cgroup_root
            if not base.exists():
                continue
            for dirpath, _dirs, files in os.walk(base):
                if "cgroup.procs" in files:
                    try:
                        pids.update(int(p) for p in (Path(dirpath) / "cgroup.procs").read_text().split())
                    except OSError:
                        continue
        return pids

    def all_pids(self) -> set[int]:
        pids = self.cgroup_pids()
        if netns.ns_exists(self.netns):
            pids.update(netns.ns_pids(self.netns))
        pids.discard(os.getpid())
        return pids

    def kill_all(self, timeout_s: float = 30.0) -> None:
        """SIGKILL every process of the node until none is left (containers, shims, daemons)."""
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.all_pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise NodeError(f"node {self.name}: processes {sorted(pids)} survive SIGKILL")
            time.sleep(0.05)

    def mounts(self) -> list[str]:
        """Mount points of the node's mount namespace (longest first, for unmounting)."""
        out = self.run(["cat", "/proc/self/mountinfo"], net=False, check=False)
        points = [_unescape(line.split()[4]) for line in out.stdout.splitlines() if len(line.split()) > 4]
        return sorted(points, key=len, reverse=True)

    def unmount_volatile(self) -> None:
        """What a reboot drops: pod network namespaces, container root file systems and state,
        kubelet's volume mounts (the node's processes must be dead)."""
        volatile = (os.path.realpath(NETNS_RUN_DIR) + "/", "/run/containerd/", str(self.root / "containerd") + "/",
                    "/var/lib/kubelet/pods/")
        for point in self.mounts():
            if point.startswith(volatile):
                self.run(["umount", "-l", point], net=False, check=False)

    def reset_cgroups(self) -> None:
        """Drop the node's (empty) cgroup tree and make its root again."""
        self._remove_cgroups()
        self.create_cgroups()

    def _remove_cgroups(self) -> None:
        for ctrl in self._controllers():
            base = ctrl / self.cgroup_root
            if not base.exists():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    def destroy(self, made_dirs: Sequence[str] = ()) -> list[str]:
        """Remove the node whole; works on what is left after a crash too."""
        removed: list[str] = []
        self.kill_all()
        self._remove_cgroups()
        if self.mnt.exists():
            netns.run(["umount", "-l", str(self.mnt)], check=False)
        if self.ns_dir.exists():
            netns.run(["umount", "-l", str(self.ns_dir)], check=False)
        if netns.ns_exists(self.netns):
            netns.run(["ip", "netns", "delete", self.netns], check=False)
            removed.append(f"netns {self.netns}")
        for d in made_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
            removed.append(f"dir {self.root}")
        return removed


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
