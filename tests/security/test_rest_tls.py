"""The agent's REST from another node: HTTPS only, the token required, netctl verifying the server.

Two namespaces joined by a veth: "node" runs the real ``contiv-agent`` (its REST on the node's
address with the chart's kind of certificate: DNS SAN ``contiv-agent`` plus localhost and
127.0.0.1), "other" is another node. Every request is made from "other".
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from apps.vswitch.main import SPEC
from core.agent import AgentError
from core.etcdserver import EtcdServer
from core.testing import running_app
from plugins.linux.netns import run_in_namespace
from tests.security.certs import TestPKI

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "rest-token-0123456789"
PORT = 9999
PLUGINS = ["service-label", "http", "health", "kvscheduler"]


def sh(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


@dataclass
class Nodes:
    node: str
    other: str
    node_ip: str
    pki: TestPKI
    cert: Path
    key: Path
    dir: Path


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces)")
    tag = f"srt{os.getpid() % 10000}{uuid.uuid4().hex[:3]}"
    node, other = f"{tag}-node", f"{tag}-other"
    made: list[str] = []
    octet = 100 + os.getpid() % 100
    try:
        for ns in (node, other):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "eth0", "netns", node, "type", "veth", "peer", "name", "eth0", "netns", other)
        for ns, host in ((node, 1), (other, 2)):
            sh("ip", "-n", ns, "addr", "add", f"10.250.{octet}.{host}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        directory = tmp_path_factory.mktemp("rest-tls")
        pki = TestPKI(directory / "tls")
        cert, key = pki.server("rest", dns=["contiv-agent", "localhost"], ips=["127.0.0.1"])
        yield Nodes(node, other, f"10.250.{octet}.1", pki, cert, key, directory)
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def agent_config(nodes: Nodes, **http: object) -> Path:
    cfg = {"plugins": PLUGINS, "service-label": {"label": "node1"},
           "http": {"address": nodes.node_ip, "port": PORT, "token": TOKEN, **http}}
    path = nodes.dir / f"agent-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def env() -> dict[str, str]:
    out = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("CONTIV_AGENT_TOKEN", "CONTIV_AGENT_TOKEN_FILE", "CONTIV_AGENT_CA", "CONTIV_AGENT_SERVER_NAME",
                 "CONTIV_AGENTS", "CONTIV_NETCTL_NETNS"):
        out.pop(name, None)
    return out


def tls_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def request(netns: str, ip: str, path: str, token: str | None, ca: Path | None,
            port: int = PORT) -> tuple[int, bytes]:
    """GET ``path`` from ``netns`` (HTTPS verified as contiv-agent with ``ca``; plain without)."""
    def connect() -> socket.socket:
        return socket.create_connection((ip, port), timeout=10)

    sock = run_in_namespace(netns, connect)
    if ca is not None:
        sock = tls_context(ca).wrap_socket(sock, server_hostname="contiv-agent")
    conn = http.client.HTTPConnection(ip, port, timeout=10)
    conn.sock = sock
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token is not None else {})
    rsp = conn.getresponse()
    body = rsp.read()
    conn.close()
    return rsp.status, body


def start_agent(nodes: Nodes, cfg: Path) -> tuple[subprocess.Popen[str], str]:
    """The real agent in "node"; returns once it logs that it serves (its output until then)."""
    proc = subprocess.Popen(["ip", "netns", "exec", nodes.node, sys.executable, "-m", "apps.vswitch.main",
                             "--config", str(cfg)], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # EOF: the agent exited
        seen.append(line)
        if "serving on" in line:
            break
    else:
        proc.wait(timeout=30)
        raise AssertionError(f"the agent did not serve:\n{''.join(seen)}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    return proc, "".join(seen)


@pytest.fixture(scope="module")
def agent(nodes: Nodes) -> Iterator[subprocess.Popen[str]]:
    """The real agent in "node", serving HTTPS on the node's address."""
    proc, _ = start_agent(nodes, agent_config(nodes, tls_cert_file=str(nodes.cert), tls_key_file=str(nodes.key)))
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def netctl(*args: str, etcd: EtcdServer | None = None) -> subprocess.CompletedProcess[str]:
    """contiv-netctl; with ``etcd``, its endpoint and netctl's read-only certificate (mTLS)."""
    full = env()
    if etcd is not None:
        tls = etcd.client_tls("netctl")
        full |= {"ETCD_ENDPOINTS": etcd.endpoint, "ETCDCTL_CACERT": str(tls.ca_file),
                 "ETCDCTL_CERT": str(tls.cert_file), "ETCDCTL_KEY": str(tls.key_file)}
    return subprocess.run([sys.executable, "-m", "apps.netctl.main", *args], capture_output=True, text=True,
                          env=full, timeout=60)


def test_rest_needs_the_token_over_https(nodes: Nodes, agent: subprocess.Popen[str]) -> None:
    ip, ca = nodes.node_ip, nodes.pki.ca_file
    assert request(nodes.other, ip, "/scheduler/txn-history", None, ca)[0] == 401
    status, body = request(nodes.other, ip, "/scheduler/txn-history", "wrong-token", ca)
    assert status == 401 and b"bearer token" in body
    assert request(nodes.other, ip, "/scheduler/txn-history", TOKEN, ca)[0] == 200
    assert request(nodes.other, ip, "/liveness", None, ca)[0] == 200  # the probes' open paths


def test_plaintext_from_another_node_gets_no_answer(nodes: Nodes, agent: subprocess.Popen[str]) -> None:
    def plain() -> bytes:
        with socket.create_connection((nodes.node_ip, PORT), timeout=10) as sock:
            sock.sendall(f"GET /scheduler/txn-history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
                         "\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(4096):  # the server closes the connection: EOF ends it
                chunks.append(chunk)
            return b"".join(chunks)

    try:
        answer = run_in_namespace(nodes.other, plain)
    except ConnectionResetError:
        answer = b""
    assert not answer.startswith(b"HTTP/"), answer[:200]


def test_netctl_verifies_the_agent_against_the_ca(nodes: Nodes, agent: subprocess.Popen[str],
                                                  etcd_server: EtcdServer) -> None:
    url = f"node1=https://{nodes.node_ip}:{PORT};netns={nodes.other}"  # connecting from the other node
    common = ["--agent", url, "--token", TOKEN]
    history = ["scheduler", "history", "--node", "node1"]
    ok = netctl(*common, "--ca-file", str(nodes.pki.ca_file), *history, etcd=etcd_server)
    assert ok.returncode == 0, ok.stderr
    wrong_ca = TestPKI(nodes.dir / "other-ca", cn="not-the-contiv-ca")
    refused = netctl(*common, "--ca-file", str(wrong_ca.ca_file), *history, etcd=etcd_server)
    assert refused.returncode == 4, refused.stderr
    assert "failed TLS verification" in refused.stderr and "certificate verify failed" not in refused.stdout
    system = netctl(*common, *history, etcd=etcd_server)  # the system CAs do not know it
    assert system.returncode == 4 and "failed TLS verification" in system.stderr
    name = netctl(*common, "--ca-file", str(nodes.pki.ca_file), "--agent-server-name", "someone-else",
                  *history, etcd=etcd_server)
    assert name.returncode == 4 and "'someone-else'" in name.stderr
    missing = netctl(*common, "--ca-file", str(nodes.dir / "nope.crt"), *history, etcd=etcd_server)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_netctl_never_sends_the_token_over_plain_http_to_another_host(nodes: Nodes,
                                                                    etcd_server: EtcdServer) -> None:
    """A plain listener on the node: netctl refuses before connecting (nothing ever reaches it)."""
    listener = run_in_namespace(nodes.node, lambda: socket.create_server((nodes.node_ip, 9998)))
    try:
        out = netctl("--agent", f"node1=http://{nodes.node_ip}:9998;netns={nodes.other}", "--token", TOKEN,
                     "scheduler", "history", "--node", "node1", etcd=etcd_server)
        assert out.returncode == 2, out.stderr
        assert "refusing to send the bearer token" in out.stderr and "over plain HTTP" in out.stderr
        readable, _, _ = select.select([listener], [], [], 0)  # netctl has exited: nothing pending
        assert readable == []
    finally:
        listener.close()


def validate(nodes: Nodes, **http: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apps.vswitch.main", "--config", str(agent_config(nodes, **http)),
                           "--validate-config"], capture_output=True, text=True, env=env(), timeout=60)


def test_non_loopback_plaintext_is_refused_unless_insecure(nodes: Nodes) -> None:
    out = validate(nodes)
    assert out.returncode == 2
    assert "is not a loopback address: set tls_cert_file and tls_key_file" in out.stdout + out.stderr
    half = validate(nodes, tls_cert_file=str(nodes.cert))
    assert half.returncode == 2 and "tls_cert_file and tls_key_file go together" in half.stdout + half.stderr
    assert validate(nodes, insecure=True).returncode == 0
    assert validate(nodes, tls_cert_file=str(nodes.cert), tls_key_file=str(nodes.key)).returncode == 0


def test_insecure_warns_at_start(nodes: Nodes, agent: subprocess.Popen[str]) -> None:
    proc, output = start_agent(nodes, agent_config(nodes, insecure=True, port=9997))
    try:
        assert "insecure: serving plain HTTP" in output, output  # logged before it serves
        assert request(nodes.other, nodes.node_ip, "/liveness", None, None, port=9997)[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_a_key_that_does_not_match_stops_the_start(nodes: Nodes) -> None:
    other_cert, _ = nodes.pki.server("other", dns=["contiv-agent"])
    config = {"plugins": PLUGINS, "service-label": {"label": "node1"},
              "http": {"port": 0, "tls_cert_file": str(other_cert), "tls_key_file": str(nodes.key)}}
    with pytest.raises(AgentError, match=r"cannot serve HTTPS with tls_cert_file .*other\.crt.*key values mismatch"):
        async with running_app(SPEC, config):
            pass
