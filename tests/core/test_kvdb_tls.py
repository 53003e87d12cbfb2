"""The etcd backend over TLS with client certificates, against a real etcd that requires them."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.etcdserver import EtcdServer, EtcdTLS
from core.kvdb.api import KVError, KVUnavailableError
from core.kvdb.etcd import EtcdBroker, TLSFiles
from core.kvdb.plugin import KVDBConfig, KVDBPlugin

pytestmark = pytest.mark.etcd


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue(ca: Path, ca_key: Path, out: Path, cn: str, ext: str) -> tuple[Path, Path]:
    key, csr, crt, extfile = out / f"{cn}.key", out / f"{cn}.csr", out / f"{cn}.crt", out / f"{cn}.ext"
    extfile.write_text(ext)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", "-out", str(crt), "-extfile", str(extfile))
    return crt, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = d / "ca.crt", d / "ca.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "1", "-subj", "/CN=contiv-test-ca")
    server_crt, server_key = issue(ca, ca_key, d, "etcd", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    client_crt, client_key = issue(ca, ca_key, d, "agent", "extendedKeyUsage=clientAuth\n")
    return {"ca": ca, "server_crt": server_crt, "server_key": server_key,
            "client_crt": client_crt, "client_key": client_key}


@pytest.fixture(scope="module")
def tls_etcd(pki: dict[str, Path]) -> Iterator[EtcdServer]:
    with EtcdServer(tls=EtcdTLS(pki["server_crt"], pki["server_key"], pki["ca"])) as server:
        yield server


async def test_client_certificate_works(tls_etcd: EtcdServer, pki: dict[str, Path]) -> None:
    broker = EtcdBroker([tls_etcd.endpoint], dial_timeout_s=5,
                        tls=TLSFiles(pki["ca"], pki["client_crt"], pki["client_key"]))
    await broker.connect()
    try:
        await broker.put("/tls/k", b"v")
        kv = await broker.get("/tls/k")
        assert kv is not None and kv.value == b"v"
    finally:
        await broker.close()


async def test_without_client_certificate_it_is_refused(tls_etcd: EtcdServer, pki: dict[str, Path]) -> None:
    broker = EtcdBroker([tls_etcd.endpoint], dial_timeout_s=2, op_timeout_s=2, tls=TLSFiles(ca_file=pki["ca"]))
    with pytest.raises(KVError):
        await broker.connect()
        await broker.put("/tls/k", b"v")
    await broker.close()


async def test_plain_text_client_cannot_talk_to_a_tls_etcd(tls_etcd: EtcdServer) -> None:
    broker = EtcdBroker([tls_etcd.endpoint], dial_timeout_s=1, op_timeout_s=1)
    with pytest.raises(KVUnavailableError):
        await broker.connect()
    await broker.close()


async def test_kvdb_plugin_config_with_tls(tls_etcd: EtcdServer, pki: dict[str, Path]) -> None:
    cfg = KVDBConfig.model_validate({
        "backend": "etcd", "endpoints": [tls_etcd.endpoint], "allow_delayed_start": False,
        "tls": {"ca_file": str(pki["ca"]), "cert_file": str(pki["client_crt"]), "key_file": str(pki["client_key"])},
    })
    plugin = KVDBPlugin(cfg)
    await plugin.init()
    try:
        await plugin.broker.put("/tls/plugin", b"1")
        assert await plugin.broker.healthy()
    finally:
        await plugin.close()


@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        env = {"ETCDCTL_API": "3"}
        for args in (["user", "add", "root:s3cret"], ["user", "add", "agent:agentpw"], ["role", "add", "agents"],
                     ["role", "grant-permission", "agents", "--prefix=true", "readwrite", "/vnf-agent/"],
                     ["user", "grant-role", "agent", "agents"], ["auth", "enable"]):
            subprocess.run(["etcdctl", "--endpoints", server.url, *args], check=True, capture_output=True, env=env)
        yield server


async def test_username_and_password(auth_etcd: EtcdServer) -> None:
    broker = EtcdBroker([auth_etcd.endpoint], username="agent", password="agentpw")
    await broker.connect()
    try:
        await broker.put("/vnf-agent/n1/x", b"1")
        kv = await broker.get("/vnf-agent/n1/x")
        assert kv is not None and kv.value == b"1"
        with pytest.raises(KVError, match="PERMISSION_DENIED"):
            await broker.put("/elsewhere", b"1")
    finally:
        await broker.close()
    wrong = EtcdBroker([auth_etcd.endpoint], username="agent", password="nope")
    with pytest.raises(KVError, match="etcd authentication as 'agent' failed"):
        await wrong.connect()
    await wrong.close()
