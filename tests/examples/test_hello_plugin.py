"""The example third-party plugin: installed, found through its entry point, toggled from YAML."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.etcdserver import EtcdServer, EtcdTLS, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed (with its entry-point metadata) into a fresh directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO / "examples" / "hello-plugin")],
        check=True, capture_output=True, timeout=300,
    )
    assert list(target.glob("contiv_hello_plugin-*.dist-info/entry_points.txt"))
    return target


def agent_env(plugin_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path), str(REPO)]))
    env.update(extra)
    return env


def run_agent(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apps.vswitch.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def write_config(tmp_path: Path, enabled: bool, port: int, log: Path) -> Path:
    plugins = ["service-label", "http", "health", "metrics", "logs", "kvdb"] + (["hello"] if enabled else [])
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(json.dumps({
        "plugins": plugins,
        "http": {"port": port},
        "hello": {"greeting": "hi from yaml", "lifecycle_log": str(log)},
    }))
    return cfg


def test_listed_with_its_origin(plugin_path: Path) -> None:
    out = run_agent("--list-plugins", env=agent_env(plugin_path))
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["hello"] == ["disabled", "entry-point:contiv-hello-plugin"]


def test_without_install_it_is_unknown(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, True, 1, tmp_path / "log")
    out = run_agent("--config", str(cfg), "--validate-config", env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 2 and "plugins[6]: unknown plugin 'hello'" in out.stderr


@pytest.fixture
def etcd_for_agent(etcd_pki: Path) -> Iterator[EtcdServer]:
    with EtcdServer(tls=EtcdTLS.from_dir(etcd_pki)) as server:
        yield server


def wait_http(url: str, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as rsp:
                return bytes(rsp.read())
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("enabled", [True, False])
def test_runs_its_lifecycle_only_when_enabled(plugin_path: Path, tmp_path: Path, enabled: bool,
                                              etcd_for_agent: EtcdServer) -> None:
    port = free_port()
    log = tmp_path / "lifecycle.log"
    cfg = write_config(tmp_path, enabled, port, log)
    env = agent_env(plugin_path, **etcd_for_agent.client_env("agent"))
    proc = subprocess.Popen([sys.executable, "-m", "apps.vswitch.main", "--config", str(cfg)],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(wait_http(f"http://127.0.0.1:{port}/readiness"))
        assert ready["ready"] is True
        assert ("hello" in ready["components"]) is enabled
        if enabled:
            assert json.loads(wait_http(f"http://127.0.0.1:{port}/hello")) == {"greeting": "hi from yaml"}
            assert b"hello_greetings_total 1.0" in wait_http(f"http://127.0.0.1:{port}/metrics")
            got = etcd_for_agent.etcdctl("get", "/hello/greeting", "--print-value-only").stdout.strip()
            assert got == "hi from yaml"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    if enabled:
        assert log.read_text().split() == ["init", "after_init", "close"]
    else:
        assert not log.exists()
