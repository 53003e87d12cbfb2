"""Shared fixtures: a real etcd per test module (mutual TLS, one CA per session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from apps.certs.pki import write_set
from core.etcdserver import EtcdServer, EtcdTLS

# CI runs the same examples every time (a red CI is then a real regression, not a lucky draw);
# local runs keep searching new ones. KVS_PROPERTY_EXAMPLES raises the scheduler's search depth.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def etcd_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """contiv-certs' files (``ca.crt``, ``etcd-server.crt``, ``root.crt``, ``agent.crt``, ...), one
    CA for the whole session."""
    directory = tmp_path_factory.mktemp("etcd-pki")
    write_set(directory, agent_nodes=("node-a", "node-b"))
    return directory


@pytest.fixture(scope="module")
def etcd_server(etcd_pki: Path) -> Iterator[EtcdServer]:
    """A real etcd-server on free loopback ports with a fresh data dir (one per test module),
    requiring client certificates; ``etcd_server.client_tls()`` are root's files."""
    server = EtcdServer(tls=EtcdTLS.from_dir(etcd_pki))
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def etcd(etcd_server: EtcdServer) -> Iterator[EtcdServer]:
    """The module's etcd, running and emptied of keys before the test."""
    etcd_server.start()
    etcd_server.etcdctl("del", "", "--from-key=true")
    yield etcd_server


@pytest.fixture(scope="session")
def contiv_images() -> Iterator[str]:
    """The project's images built once per session (tests/imagebuild.py); yields their tag."""
    from tests import imagebuild

    try:
        yield imagebuild.build()
    finally:
        imagebuild.remove()


@pytest.fixture(scope="session", autouse=True)
def reference_plugin_state_removed() -> Iterator[None]:
    """The reference plugins the chain tests run on the host (``tuning``) keep their state
    under /run/cni; what the session made there goes when it ends (empty directories only:
    anything left inside is another user's, or a test's leak that must stay visible)."""
    made = [d for d in (Path("/run/cni/tuning"), Path("/run/cni")) if not d.exists()]
    yield
    for directory in made:  # innermost first
        try:
            directory.rmdir()
        except OSError:
            pass
