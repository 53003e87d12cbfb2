"""The container images, built for real (deploy/images/build.sh = make images: mmdebstrap base
when absent, host-built wheels installed offline, podman with runc) and run: every app's
``--version`` inside them (KSR as its non-root user), the CNI installer into a temporary host
directory, and a 2-node lab whose agents and KSR run from the images with the probe passing.

Slow by nature (minutes on 2 shared cores); the build time is printed (pytest -s) and written
to build/images/build-time.txt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.lab import env as lab_env
from apps.lab.cluster import Lab
from apps.lab.pods import Kubelet, load_manifests, probe
from apps.lab.runtime import podman as images
from tests import imagebuild

pytestmark = [pytest.mark.netns, pytest.mark.images, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
TAG = imagebuild.TAG
VSWITCH = f"localhost/contiv-vswitch:{TAG}"
KSR = f"localhost/contiv-ksr:{TAG}"
LAB = f"im{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def built(contiv_images: str) -> str:
    """The session's build (tests/imagebuild.py), shared with tests/k8s."""
    assert contiv_images == TAG
    return VSWITCH


def run(image: str, *args: str, entrypoint: str | None = None,
        volumes: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    cmd = ["run", "--rm", "--network=none", "--no-healthcheck"]
    for v in volumes:
        cmd += ["--volume", v]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return images.podman(*cmd, image, *args, check=False)


def test_every_app_answers_version_and_ksr_runs_as_non_root(built: str) -> None:
    for app in ("contiv-agent", "contiv-cni", "contiv-cni-install", "contiv-netctl", "contiv-stn"):
        out = run(VSWITCH, "--version", entrypoint=f"/opt/contiv/bin/{app}")
        if app == "contiv-cni":  # a CNI plugin has no --version: CNI_COMMAND=VERSION
            out = images.podman("run", "--rm", "--network=none", "--no-healthcheck", "--env", "CNI_COMMAND=VERSION",
                                "--entrypoint", "/opt/contiv/bin/contiv-cni", VSWITCH, check=False)
            assert out.returncode == 0 and "1.0.0" in json.loads(out.stdout)["supportedVersions"], out.stderr
            continue
        assert out.returncode == 0 and out.stdout.strip() == f"{app} 0.1.0", out.stderr
    out = run(KSR, "--version")
    assert out.returncode == 0 and out.stdout.strip() == "contiv-ksr 0.1.0", out.stderr
    assert run(KSR, "-u", entrypoint="id").stdout.strip() == "10001"
    inspect = json.loads(images.podman("image", "inspect", KSR).stdout)[0]
    assert inspect["Config"]["User"] == "10001:10001"
    assert inspect["Labels"]["org.opencontainers.image.title"] == "contiv-ksr"
    assert "contiv-netctl" in " ".join(inspect["Healthcheck"]["Test"])


def test_cni_installer_from_the_image_into_a_host_directory(built: str, tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "net.d").mkdir()
    out = run(VSWITCH, "--bin-dir=/host/bin", "--conf-dir=/host/net.d", "--conf-dir-direct",
              entrypoint="/opt/contiv/bin/contiv-cni-install",
              volumes=(f"{tmp_path / 'bin'}:/host/bin", f"{tmp_path / 'net.d'}:/host/net.d"))
    assert out.returncode == 0, out.stderr
    conf = json.loads((tmp_path / "net.d" / "10-contiv.conflist").read_text())
    assert [p["type"] for p in conf["plugins"]] == ["contiv-cni", "portmap"]
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["contiv-cni", "loopback", "portmap"]
    version = subprocess.run([str(tmp_path / "bin" / "contiv-cni")], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"})
    assert version.returncode == 0 and "supportedVersions" in version.stdout, version.stderr


@pytest.fixture(scope="module")
def lab(built: str) -> Iterator[Lab]:
    lab = Lab(LAB)
    try:
        lab.up(2, image=built)
        Kubelet(lab).apply(load_manifests(ROOT / "examples" / "lab" / "pods.yaml"))
        yield lab
    finally:
        Lab(LAB).down()


def test_lab_from_images_passes_the_probe(lab: Lab) -> None:
    names = images.podman("ps", "--filter", f"label=contiv-lab={LAB}", "--format", "{{.Names}} {{.Image}}").stdout
    assert f"{LAB}-agent-node1 {VSWITCH}" in names and f"{LAB}-agent-node2 {VSWITCH}" in names
    assert f"{LAB}-ksr {KSR}" in names
    rows = probe(lab)
    assert len(rows) == 12 and all(r["ping"] and r["tcp"] for r in rows), rows
    # The image's health check command, inside the running agent container.
    health = images.podman("exec", f"{LAB}-agent-node1", "/opt/contiv/bin/contiv-netctl", "probe",
                           "http://127.0.0.1:9999/liveness", check=False)
    assert health.returncode == 0, health.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT), **lab_env.exports(lab.state))
    check = subprocess.run([sys.executable, "-m", "apps.netctl.main", "check"], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stdout + check.stderr


def test_agent_container_restart_keeps_pods_and_down_removes_containers(lab: Lab) -> None:
    before = {k: p.ip for k, p in lab.state.pods.items()}
    lab.kill_agent("node1")
    lab.start_agent("node1")
    lab.wait_agent_ready("node1")
    assert {k: p.ip for k, p in lab.state.pods.items()} == before
    assert all(r["ping"] and r["tcp"] for r in probe(lab))
    Lab(LAB).down()
    left = images.podman("ps", "--all", "--filter", f"label=contiv-lab={LAB}", "--format", "{{.Names}}").stdout
    assert left.strip() == ""
