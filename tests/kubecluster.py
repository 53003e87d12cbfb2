"""A real 2-node Kubernetes cluster of the lab (apps/lab/kube) with this session's images under
the names the committed manifest uses: what the real-cluster test modules share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from apps.lab.kube.cluster import KubeLab
from apps.lab.kube.contiv import contiv_images as manifest_images
from tests import imagebuild

ROOT = Path(__file__).resolve().parents[1]


def require_kubernetes() -> None:
    """Skip the calling test module unless the Kubernetes binaries are there."""
    if not os.environ.get("KUBE_BIN_DIR"):
        pytest.skip("no Kubernetes binaries: set KUBE_BIN_DIR (.ci/run sets it when a Kubernetes release "
                    "archive lies beside the clone)", allow_module_level=True)


def manifest_aliases(tag: str) -> dict[str, str]:
    """This session's images (test tag) under the names the committed manifest uses."""
    return {imagebuild.image(name.rsplit(":", 1)[0].rsplit("contiv-", 1)[1], tag): name
            for name in manifest_images()}


@contextmanager
def running_cluster(name: str, images_tag: str, logs: str) -> Iterator[KubeLab]:
    """Two nodes up with the images imported; on exit the logs are saved under build/``logs``
    and everything is taken down."""
    lab = KubeLab(name)
    try:
        aliases = manifest_aliases(images_tag)
        lab.up(2, images=list(aliases), aliases=aliases)
        yield lab
    finally:
        print(f"the cluster's logs: {lab.save_logs(ROOT / 'build' / logs)}")
        lab.down()
