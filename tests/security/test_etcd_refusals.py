"""Trying to get into contiv's etcd: it is reached with mutual TLS and etcd auth (CN = user),
as contiv-certs sets it up (``generate``, then ``etcd-auth``). Each test is one refusal
(docs/etcd-tls.md) and the access that the same user legitimately has."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from apps.certs.main import main as contiv_certs
from apps.certs.pki import write_set
from core.etcdserver import EtcdServer, EtcdTLS
from core.kvdb.api import KVError, KVUnavailableError
from core.kvdb.etcd import EtcdBroker, TLSFiles

pytestmark = pytest.mark.etcd
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def secured(etcd_pki: Path) -> Iterator[EtcdServer]:
    """etcd with client certificates required and contiv's users and roles enabled."""
    with EtcdServer(tls=EtcdTLS.from_dir(etcd_pki)) as server:
        assert contiv_certs(["etcd-auth", "--endpoint", server.endpoint, "--dir", str(etcd_pki),
                             "--agent-node", "node-a", "--agent-node", "node-b"]) == 0
        yield server


async def connected(server: EtcdServer, user: str) -> EtcdBroker:
    broker = EtcdBroker([server.endpoint], dial_timeout_s=5, op_timeout_s=5, tls=server.client_tls(user))
    await broker.connect()
    return broker


@pytest.fixture
async def users(secured: EtcdServer) -> AsyncIterator[dict[str, EtcdBroker]]:
    brokers = {u: await connected(secured, u) for u in ("root", "ksr", "agent", "agent-node-a", "netctl")}
    try:
        yield brokers
    finally:
        for b in brokers.values():
            await b.close()


async def test_without_a_client_certificate_etcd_refuses(secured: EtcdServer, etcd_pki: Path) -> None:
    no_cert = EtcdBroker([secured.endpoint], dial_timeout_s=2, op_timeout_s=2,
                         tls=TLSFiles(ca_file=etcd_pki / "ca.crt"))
    with pytest.raises(KVError):
        await no_cert.connect()
        await no_cert.get("/vnf-agent/contiv-ksr/k8s/pod/default/web")
    await no_cert.close()
    plain = EtcdBroker([secured.endpoint], dial_timeout_s=1, op_timeout_s=1, insecure=True)
    with pytest.raises(KVUnavailableError):
        await plain.connect()
    await plain.close()
    # etcdctl without a certificate, as anyone on the node would try.
    out = subprocess.run(["etcdctl", f"--endpoints=https://{secured.endpoint}", f"--cacert={etcd_pki}/ca.crt",
                          "--command-timeout=3s", "get", "--prefix", "/vnf-agent/"],
                         capture_output=True, text=True, env={"ETCDCTL_API": "3"})
    assert out.returncode != 0 and not out.stdout


async def test_a_certificate_of_another_ca_is_refused(secured: EtcdServer, tmp_path: Path, etcd_pki: Path) -> None:
    write_set(tmp_path)  # a second CA, its own "contiv-agent"
    stranger = EtcdBroker([secured.endpoint], dial_timeout_s=2, op_timeout_s=2,
                          tls=TLSFiles(etcd_pki / "ca.crt", tmp_path / "agent.crt", tmp_path / "agent.key"))
    with pytest.raises(KVError):
        await stranger.connect()
        await stranger.put("/vnf-agent/node-a/config/x", b"1")
    await stranger.close()


async def test_the_agent_certificate_cannot_write_ksr_prefix(users: dict[str, EtcdBroker]) -> None:
    for user in ("agent", "agent-node-a"):
        agent = users[user]
        for key in ("/vnf-agent/contiv-ksr/k8s/policy/default/deny-all", "/vnf-agent/contiv-ksr/k8s/service/x/y"):
            with pytest.raises(KVError, match="PERMISSION_DENIED"):
                await agent.put(key, b"{}")
            with pytest.raises(KVError, match="PERMISSION_DENIED"):
                await agent.delete(key)
        with pytest.raises(KVError, match="PERMISSION_DENIED"):
            await agent.delete("/vnf-agent/contiv-ksr/", prefix=True)
        with pytest.raises(KVError, match="PERMISSION_DENIED"):
            await agent.put("/contiv-ksr/election/leader", b"me")
        # What an agent does: read KSR's state, write its node's keys and a node-ID record.
        await users["ksr"].put("/vnf-agent/contiv-ksr/k8s/pod/default/web", b"{}")
        assert await agent.get("/vnf-agent/contiv-ksr/k8s/pod/default/web") is not None
        await agent.put("/vnf-agent/node-a/ipam/allocations/default/web", b"{}")
        assert await agent.put_if_absent(f"/vnf-agent/contiv-ksr/allocatedIDs/{len(user)}", b"{}")
        assert await agent.revision() > 0


async def test_a_per_node_agent_writes_only_its_own_node(users: dict[str, EtcdBroker]) -> None:
    node_a = users["agent-node-a"]
    await node_a.put("/vnf-agent/node-a/config/x", b"1")
    for key in ("/vnf-agent/node-b/config/x", "/vnf-agent/node-ab/config/x"):
        with pytest.raises(KVError, match="PERMISSION_DENIED"):
            await node_a.put(key, b"1")
    assert await node_a.get("/vnf-agent/node-a/config/x") is not None
    assert await node_a.get("/vnf-agent/node-b/config/x") is None


async def test_netctl_certificate_reads_only(users: dict[str, EtcdBroker]) -> None:
    netctl = users["netctl"]
    await users["agent"].put("/vnf-agent/node-b/podmanager/pod/default/web", b"{}")
    assert "/vnf-agent/node-b/podmanager/pod/default/web" in [kv.key for kv in await netctl.list("/vnf-agent/")]
    for key in ("/vnf-agent/node-b/config/x", "/vnf-agent/contiv-ksr/k8s/pod/default/evil", "/elsewhere"):
        with pytest.raises(KVError, match="PERMISSION_DENIED"):
            await netctl.put(key, b"1")
    with pytest.raises(KVError, match="PERMISSION_DENIED"):
        await netctl.delete("/vnf-agent/", prefix=True)
    with pytest.raises(KVError, match="PERMISSION_DENIED"):
        await netctl.get("/elsewhere")


async def test_ksr_writes_its_prefix_and_not_elsewhere(users: dict[str, EtcdBroker]) -> None:
    ksr = users["ksr"]
    await ksr.put("/vnf-agent/contiv-ksr/k8s/node/n1", b'{"name": "n1"}')
    assert await ksr.put_if_absent("/contiv-ksr/election/leader", b"ksr-1")
    # Node clean-up deletes a departed node's keys (write on agent prefixes, see etcdauth.py).
    await users["agent"].put("/vnf-agent/gone/config/x", b"1")
    assert await ksr.delete("/vnf-agent/gone/", prefix=True) == 1
    for key in ("/elsewhere", "/registry/pods/x"):
        with pytest.raises(KVError, match="PERMISSION_DENIED"):
            await ksr.put(key, b"1")


def test_netctl_command_reads_with_its_certificate(secured: EtcdServer, etcd_pki: Path) -> None:
    """contiv-netctl through its real path, with the read-only certificate."""
    def netctl(*extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "apps.netctl.main", "-o", "json", "nodes", *extra],
                              capture_output=True, text=True, cwd=REPO, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                   "ETCD_ENDPOINTS": secured.endpoint, **env})
    ok = netctl(ETCDCTL_CACERT=str(etcd_pki / "ca.crt"), ETCDCTL_CERT=str(etcd_pki / "netctl.crt"),
                ETCDCTL_KEY=str(etcd_pki / "netctl.key"))
    assert secured.etcdctl("put", "/vnf-agent/contiv-ksr/k8s/node/n1", '{"name": "n1"}').returncode == 0
    # 4: no agent REST to ask here; what etcd holds is printed.
    assert ok.returncode == 4 and '"n1"' in ok.stdout, ok.stderr
    refused = netctl()
    assert refused.returncode == 2 and "plain text refused" in refused.stderr
