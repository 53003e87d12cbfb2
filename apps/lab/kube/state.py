"""The state file of a lab Kubernetes cluster, and where its binaries are."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import BaseModel

from apps.lab.kube import configs

BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")


class KubeLabError(RuntimeError):
    """A lab operation on the Kubernetes cluster failed (the message says what and why)."""


class KubeNodeState(BaseModel):
    name: str
    index: int
    netns: str
    ip: str
    containerd_pid: int | None = None
    kubelet_pid: int | None = None
    made_dirs: list[str] = []


class KubeLabState(BaseModel):
    name: str
    root: Path
    bin_dir: Path
    pause_image: Path
    nodes: dict[str, KubeNodeState] = {}
    etcd_pid: int | None = None
    apiserver_pid: int | None = None
    controller_manager_pid: int | None = None
    scheduler_pid: int | None = None
    images: list[str] = []

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / ".state.json.tmp"
        tmp.write_text(self.model_dump_json(indent=1))
        os.replace(tmp, self.root / "state.json")

    @classmethod
    def load(cls, root: Path) -> KubeLabState | None:
        try:
            return cls.model_validate_json((root / "state.json").read_text())
        except FileNotFoundError:
            return None


def find_binaries(bin_dir: str | Path | None = None) -> tuple[Path, Path]:
    """The directory of the Kubernetes binaries and the pause image archive, or a clear error."""
    chosen = bin_dir or os.environ.get("KUBE_BIN_DIR") or ""
    if not chosen:
        raise KubeLabError("no Kubernetes binaries: give --kube-bin-dir or set KUBE_BIN_DIR to a directory "
                           f"holding {', '.join(BINARIES)} (v1.28 or later)")
    d = Path(chosen).resolve()
    missing = [b for b in BINARIES if not os.access(d / b, os.X_OK)]
    if missing:
        raise KubeLabError(f"{d} lacks the Kubernetes binaries {', '.join(missing)} (KUBE_BIN_DIR)")
    pause = Path(os.environ.get("KUBE_PAUSE_IMAGE") or d.parent / "images" / "pause-3.9.tar")
    if not pause.exists():
        raise KubeLabError(f"no pause image archive at {pause} (set KUBE_PAUSE_IMAGE to a docker-archive "
                           f"of {configs.PAUSE_IMAGE})")
    for tool in ("containerd", "ctr", "runc", "nsenter", "unshare", "openssl"):
        if shutil.which(tool) is None:
            raise KubeLabError(f"{tool} is missing (make deps installs Debian's containerd, runc and openssl)")
    return d, pause
