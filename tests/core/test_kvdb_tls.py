"""The etcd backend over mutual TLS against a real etcd that requires client certificates, and
the refusal of plain text unless ``insecure`` says so."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.etcdserver import EtcdServer
from core.kvdb.api import KVError, KVUnavailableError
from core.kvdb.etcd import EtcdBroker, TLSFiles
from core.kvdb.plugin import KVDBConfig, KVDBPlugin

pytestmark = pytest.mark.etcd


async def test_client_certificate_works(etcd: EtcdServer) -> None:
    broker = EtcdBroker([etcd.endpoint], dial_timeout_s=5, tls=etcd.client_tls("agent"))
    await broker.connect()
    try:
        await broker.put("/tls/k", b"v")
        kv = await broker.get("/tls/k")
        assert kv is not None and kv.value == b"v"
    finally:
        await broker.close()


async def test_without_client_certificate_it_is_refused(etcd: EtcdServer, etcd_pki: Path) -> None:
    broker = EtcdBroker([etcd.endpoint], dial_timeout_s=2, op_timeout_s=2, tls=TLSFiles(ca_file=etcd_pki / "ca.crt"))
    with pytest.raises(KVError):
        await broker.connect()
        await broker.put("/tls/k", b"v")
    await broker.close()


async def test_a_server_name_not_in_the_certificate_is_refused(etcd: EtcdServer, etcd_pki: Path) -> None:
    tls = TLSFiles.from_dir(etcd_pki, "agent", server_name="someone-else")
    broker = EtcdBroker([etcd.endpoint], dial_timeout_s=1, op_timeout_s=1, tls=tls)
    with pytest.raises(KVUnavailableError):
        await broker.connect()
    await broker.close()


async def test_plain_text_client_cannot_talk_to_a_tls_etcd(etcd: EtcdServer) -> None:
    broker = EtcdBroker([etcd.endpoint], dial_timeout_s=1, op_timeout_s=1, insecure=True)
    with pytest.raises(KVUnavailableError):
        await broker.connect()
    await broker.close()


def test_plain_text_is_refused_unless_insecure() -> None:
    with pytest.raises(KVError, match=r"etcd endpoint 10.0.0.1:2379: plain text refused .*kvdb.insecure: true"):
        EtcdBroker(["10.0.0.1:2379"])
    EtcdBroker(["10.0.0.1:2379"], insecure=True)


async def test_kvdb_plugin_refuses_plain_text_at_start() -> None:
    plugin = KVDBPlugin(KVDBConfig(backend="etcd", endpoints=["127.0.0.1:9"]))
    with pytest.raises(KVError, match="plain text refused"):
        await plugin.init()


async def test_kvdb_plugin_insecure_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    plugin = KVDBPlugin(KVDBConfig(backend="etcd", endpoints=["127.0.0.1:9"], insecure=True, dial_timeout_s=0.2))
    with caplog.at_level(logging.WARNING):
        await plugin.init()
    await plugin.close()
    assert any("PLAIN TEXT (kvdb.insecure: true)" in r.getMessage() for r in caplog.records)


async def test_missing_certificate_file_is_named(etcd: EtcdServer, tmp_path: Path) -> None:
    tls = TLSFiles(tmp_path / "ca.crt", tmp_path / "agent.crt", tmp_path / "agent.key")
    broker = EtcdBroker([etcd.endpoint], tls=tls)
    with pytest.raises(KVError, match=f"etcd TLS CA file {tmp_path}/ca.crt: No such file"):
        await broker.connect()


async def test_kvdb_plugin_config_with_tls(etcd: EtcdServer) -> None:
    cfg = KVDBConfig.model_validate({**etcd.kvdb_config("agent"), "allow_delayed_start": False})
    plugin = KVDBPlugin(cfg)
    await plugin.init()
    try:
        await plugin.broker.put("/tls/plugin", b"1")
        assert await plugin.broker.healthy()
    finally:
        await plugin.close()


@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[EtcdServer]:
    """A plain-text etcd with password users (``insecure``; the password path of the broker)."""
    with EtcdServer() as server:
        for args in (["user", "add", "root:s3cret"], ["user", "add", "agent:agentpw"], ["role", "add", "agents"],
                     ["role", "grant-permission", "agents", "--prefix=true", "readwrite", "/vnf-agent/"],
                     ["user", "grant-role", "agent", "agents"], ["auth", "enable"]):
            assert server.etcdctl(*args).returncode == 0
        yield server


async def test_username_and_password(auth_etcd: EtcdServer) -> None:
    broker = EtcdBroker([auth_etcd.endpoint], username="agent", password="agentpw", insecure=True)
    await broker.connect()
    try:
        await broker.put("/vnf-agent/n1/x", b"1")
        kv = await broker.get("/vnf-agent/n1/x")
        assert kv is not None and kv.value == b"1"
        with pytest.raises(KVError, match="PERMISSION_DENIED"):
            await broker.put("/elsewhere", b"1")
    finally:
        await broker.close()
    wrong = EtcdBroker([auth_etcd.endpoint], username="agent", password="nope", insecure=True)
    with pytest.raises(KVError, match="etcd authentication as 'agent' failed"):
        await wrong.connect()
    await wrong.close()
