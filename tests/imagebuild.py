"""One build of the project's images per test session (``make images``'s script, a test tag).

Building takes minutes on 2 cores, so the image tests (tests/deploy/test_images.py) and the
real-Kubernetes tests (tests/k8s/) share it: :func:`build_once` builds on first use and the
session fixture ``contiv_images`` (tests/conftest.py) removes the images when the session ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = f"test{os.getpid() % 100000}"
APPS = ("vswitch", "ksr", "etcd")


def image(app: str, tag: str = TAG) -> str:
    return f"localhost/contiv-{app}:{tag}"


def build() -> str:
    """Run deploy/images/build.sh with IMAGE_TAG=TAG; asserts it worked; returns the tag."""
    from apps.cni.binary import cni_binary

    cni_binary(build=True)  # build.sh copies the Go contiv-cni (make cni-bin) into the image
    start = time.monotonic()
    out = subprocess.run(["bash", str(ROOT / "deploy" / "images" / "build.sh")], capture_output=True, text=True,
                         env=dict(os.environ, IMAGE_TAG=TAG, PY=sys.executable), timeout=1700)
    took = time.monotonic() - start
    steps = [line for line in out.stdout.splitlines() if line.startswith("==") or "contiv-" in line]
    report = f"make images took {took:.0f}s:\n" + "\n".join(steps)
    print(report)
    (ROOT / "build" / "images").mkdir(parents=True, exist_ok=True)
    (ROOT / "build" / "images" / "build-time.txt").write_text(report + "\n")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return TAG


def remove() -> None:
    from apps.lab.runtime import podman as images

    images.podman("rmi", "--force", *(image(app) for app in APPS), check=False)
