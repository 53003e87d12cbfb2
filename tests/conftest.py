"""Shared fixtures: a real etcd per test module, brokers on both backends."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from core.etcdserver import EtcdServer

# CI runs the same examples every time (a red CI is then a real regression, not a lucky draw);
# local runs keep searching new ones. KVS_PROPERTY_EXAMPLES raises the scheduler's search depth.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="module")
def etcd_server() -> Iterator[EtcdServer]:
    """A real etcd-server on free loopback ports with a fresh data dir (one per test module)."""
    server = EtcdServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def etcd(etcd_server: EtcdServer) -> Iterator[EtcdServer]:
    """The module's etcd, running and emptied of keys before the test."""
    import shutil
    import subprocess

    etcd_server.start()
    ctl = shutil.which("etcdctl")
    if ctl:
        subprocess.run(
            [ctl, "--endpoints", etcd_server.url, "del", "", "--from-key=true"],
            check=False, capture_output=True, env={"ETCDCTL_API": "3"},
        )
    yield etcd_server


@pytest.fixture(scope="session")
def contiv_images() -> Iterator[str]:
    """The project's images built once per session (tests/imagebuild.py); yields their tag."""
    from tests import imagebuild

    try:
        yield imagebuild.build()
    finally:
        imagebuild.remove()
