"""``contiv-lab up --image IMAGE``: each node's agent and KSR run from the project's container
images, with podman, inside the lab's namespaces (``--network ns:<namespace file>``), so the
images users deploy are the ones the lab tests.

``IMAGE`` is the vswitch image (``localhost/contiv-vswitch:TAG`` from ``make images``); KSR runs
from the KSR image of the same tag (``contiv-ksr``), as its non-root user. podman's settings come
from ``CONTAINERS_CONF`` (default: this repository's ``deploy/podman/containers.conf``: runc,
explicit ulimits, no default network). No container ever uses podman's bridge network.

A container's PID (its init in the host PID namespace) stands for the process in the lab state,
so ``kill-agent``/``restart-agent``/``down`` work as in process mode; containers carry the label
``contiv-lab=<lab>`` and ``--rm``, and ``down`` removes any that are left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from apps.lab.errors import LabError
from apps.lab.runtime.base import App
from apps.lab.state import LabState
from plugins.linux.netns import NETNS_RUN_DIR, namespace_path

REPO_CONF = Path(__file__).resolve().parents[3] / "deploy" / "podman" / "containers.conf"
#: Environment variables of the lab's process mode that the containers get too.
PASSED_ENV = ("ETCD_ENDPOINTS", "NODE_NAME")
#: Where the agent container sees the host's /proc/sys/net (``linux.sysctl_dir``), as in the chart.
HOST_PROC_SYS = "/host/proc/sys"


class ImageError(LabError):
    """podman is missing or failed (the message has the command and its error)."""


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("CONTAINERS_CONF") and REPO_CONF.exists():
        env["CONTAINERS_CONF"] = str(REPO_CONF)
    return env


def podman(*args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("podman")
    if exe is None:
        raise ImageError("podman is not installed (make deps installs it)")
    out = subprocess.run([exe, *args], capture_output=True, text=True, env=podman_env(), timeout=timeout)
    if check and out.returncode != 0:
        raise ImageError(f"podman {' '.join(args[:3])} ... failed ({out.returncode}): {out.stderr.strip()}")
    return out


def ksr_image(vswitch_image: str) -> str:
    """``.../contiv-vswitch:TAG`` -> ``.../contiv-ksr:TAG``."""
    repo, sep, tag = vswitch_image.rpartition(":")
    if not sep or "/" in tag:
        repo, tag = vswitch_image, "latest"
    if not repo.endswith("contiv-vswitch"):
        raise ImageError(f"--image must name a contiv-vswitch image (make images), got {vswitch_image!r}")
    return f"{repo.removesuffix('contiv-vswitch')}contiv-ksr:{tag}"


def check_image(image: str) -> None:
    """Fail early and clearly when an image is not in podman's store."""
    if podman("image", "exists", image, check=False).returncode != 0:
        raise ImageError(f"image {image} is not built: run 'make images' (or 'podman images' to see what is)")


class PodmanRuntime:
    """The apps run from the lab's images (``state.image`` and its KSR twin) with podman."""

    name = "podman"

    def check(self, state: LabState) -> None:
        for image in images_of(state):
            check_image(image)

    def start(self, state: LabState, app: App, config: Path, netns_name: str, log: Path,
              env: Mapping[str, str], name: str) -> int:
        return run_app(state, app, config, netns_name, log, env, name)

    def remove_all(self, state: LabState) -> list[str]:
        return remove_containers(state.name)


def run_app(state: LabState, app: App, config: Path, netns_name: str, log: Path,
            env: Mapping[str, str], name: str) -> int:
    """Start ``app`` from the lab's image in ``netns_name``; returns its PID."""
    image = state.image if app == "agent" else ksr_image(state.image)
    cname = f"{state.name}-{name}"
    args = ["run", "--detach", "--rm", "--replace", "--name", cname, "--label", f"contiv-lab={state.name}",
            "--network", f"ns:{namespace_path(netns_name)}", "--no-healthcheck",
            "--log-driver", "k8s-file", "--log-opt", f"path={log}",
            "--volume", f"{config}:{config}:ro", "--volume", f"{state.pki}:{state.pki}:ro"]
    for key in PASSED_ENV:
        if env.get(key):
            args += ["--env", f"{key}={env[key]}"]
    if app == "agent":
        node_dir = config.parent
        # Not privileged, as in the chart (docs/security.md): NET_ADMIN (netlink, nftables) and
        # SYS_ADMIN (setns into pod namespaces, whose files appear under the namespace directory
        # after the agent starts: rslave propagates them into the container); net.* sysctls
        # through the host's /proc/sys/net (the container's /proc/sys is read-only).
        args += ["--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_ADMIN",
                 "--volume", f"{node_dir}:{node_dir}",
                 "--volume", f"{NETNS_RUN_DIR}:{NETNS_RUN_DIR}:rslave",
                 "--volume", f"/proc/sys/net:{HOST_PROC_SYS}/net",
                 "--env", f"CONTIV_LINUX__SYSCTL_DIR={HOST_PROC_SYS}"]
    else:
        manifests = state.manifests
        args += ["--volume", f"{manifests}:{manifests}:ro", "--read-only"]
    podman(*args, image, "--config", str(config))
    return container_pid(cname)


def container_pid(cname: str) -> int:
    out = podman("inspect", "--format", "{{.State.Pid}}", cname)
    pid = int(out.stdout.strip() or 0)
    if pid <= 0:
        logs = podman("logs", cname, check=False).stdout[-2000:]
        raise ImageError(f"container {cname} is not running: {logs}")
    return pid


def remove_containers(lab_name: str) -> list[str]:
    """Remove every container of the lab (running or not); returns their names."""
    if shutil.which("podman") is None:
        return []
    listed = podman("ps", "--all", "--filter", f"label=contiv-lab={lab_name}", "--format", "{{.Names}}",
                    check=False).stdout.split()
    if listed:
        podman("rm", "--force", "--time", "5", *listed, check=False)
    return [f"container {c}" for c in listed]


def images_of(state: LabState) -> Sequence[str]:
    return [state.image, ksr_image(state.image)]
