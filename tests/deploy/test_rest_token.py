"""The agent REST opened beyond loopback needs a bearer token; netctl sends it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from apps.vswitch.main import SPEC
from core.etcdserver import EtcdServer
from core.http import HTTPPlugin
from core.testing import running_app

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
CONFIG = {"plugins": ["service-label", "http", "health", "kvscheduler"],
          "service-label": {"label": "node1"}, "http": {"port": 0, "token": TOKEN}}


def validate(tmp_path: Path, http: dict[str, object]) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"plugins: [service-label, http, health]\nhttp: {http}\n")
    return subprocess.run([sys.executable, "-m", "apps.vswitch.main", "--config", str(cfg), "--validate-config"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_non_loopback_address_without_a_token_is_refused(tmp_path: Path) -> None:
    out = validate(tmp_path, {"address": "0.0.0.0", "port": 9999})
    assert out.returncode == 2
    assert "address '0.0.0.0' is not a loopback address: set token or token_file" in out.stdout + out.stderr
    # with the token, plain HTTP is still refused there (tests/security/test_rest_tls.py); insecure takes it
    assert validate(tmp_path, {"address": "0.0.0.0", "token_file": "/etc/contiv/token",
                               "insecure": True}).returncode == 0
    assert validate(tmp_path, {"address": "127.0.0.1"}).returncode == 0


async def test_token_guards_every_route_but_the_probes(etcd_server: EtcdServer) -> None:
    async with running_app(SPEC, CONFIG) as agent:
        http = agent.plugin("http")
        assert isinstance(http, HTTPPlugin)
        async with httpx.AsyncClient(base_url=http.base_url) as client:
            assert (await client.get("/readiness")).status_code == 200
            assert (await client.get("/liveness")).status_code == 200
            assert (await client.get("/scheduler/txn-history")).status_code == 401
            wrong = await client.get("/scheduler/txn-history", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and "bearer token" in wrong.text
            right = await client.get("/scheduler/txn-history", headers={"Authorization": f"Bearer {TOKEN}"})
            assert right.status_code == 200

        def netctl(*args: str) -> subprocess.CompletedProcess[str]:
            tls = etcd_server.client_tls("netctl")
            env = dict(os.environ, PYTHONPATH=str(ROOT), ETCD_ENDPOINTS=etcd_server.endpoint,
                       ETCDCTL_CACERT=str(tls.ca_file), ETCDCTL_CERT=str(tls.cert_file),
                       ETCDCTL_KEY=str(tls.key_file), CONTIV_AGENTS=f"node1={http.base_url}")
            env.pop("CONTIV_AGENT_TOKEN", None)
            return subprocess.run([sys.executable, "-m", "apps.netctl.main", *args], capture_output=True,
                                  text=True, env=env, timeout=60)

        refused = await asyncio.to_thread(netctl, "scheduler", "history", "--node", "node1")
        assert refused.returncode == 4 and "wrong or missing token (CONTIV_AGENT_TOKEN)" in refused.stderr
        ok = await asyncio.to_thread(netctl, "--token", TOKEN, "scheduler", "history", "--node", "node1")
        assert ok.returncode == 0, ok.stderr
