"""The lab workload in a real namespace: TCP and UDP on every port, answers naming the pod and the
client address it saw."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.lab import netns
from apps.lab.echo import parse_port, parse_reply
from apps.lab.pods import container_ports

pytestmark = pytest.mark.netns

NS = f"svc{os.getpid() % 100000}echo"

UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.bind(("127.0.0.1", 0))
s.sendto(b"hi", ("127.0.0.1", int(sys.argv[1])))
print(s.getsockname()[1], s.recvfrom(1024)[0].decode().strip())
"""


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("echo") / "echo.log"
    netns.ns_add(NS)
    try:
        pid = netns.spawn([sys.executable, "-m", "apps.lab.echo", "--name", "demo/web-1",
                           "--port", "8080", "--port", "9090"], NS, log)
        deadline = time.monotonic() + 60
        while "serving" not in (log.read_text() if log.exists() else ""):
            assert netns.pid_alive(pid) and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield log
    finally:
        netns.ns_delete(NS)


def test_tcp_on_every_port_names_pod_and_client(echo: Path) -> None:
    out = netns.run([sys.executable, "-m", "apps.lab.probe", "127.0.0.1:8080", "127.0.0.1:9090"], netns=NS)
    rows = json.loads(out.stdout)
    assert [(r["port"], r["tcp"], r["tcp_from"]) for r in rows] == [(8080, True, "demo/web-1"),
                                                                    (9090, True, "demo/web-1")]
    for r in rows:
        ip, port = r["seen_as"].split(":")
        assert ip == "127.0.0.1" and int(port) > 1024


@pytest.mark.parametrize("port", [8080, 9090])
def test_udp_answers_with_the_datagram_source(echo: Path, port: int) -> None:
    out = netns.run([sys.executable, "-c", UDP_CLIENT, str(port)], netns=NS)
    local_port, answer = out.stdout.split(" ", 1)
    reply = parse_reply(answer)
    assert reply is not None
    assert (reply.pod, reply.client_ip, reply.client_port) == ("demo/web-1", "127.0.0.1", int(local_port))


def test_reply_and_port_parsing() -> None:
    assert parse_reply(b"ns/p 10.1.1.2:4242\n") is not None
    assert parse_reply(b"probe") is None
    assert parse_reply("ns/p 10.1.1.2:x") is None
    assert parse_port("9000/SCTP") == (9000, "sctp")
    assert parse_port("53/udp") == (53, None)
    with pytest.raises(ValueError, match="bad port"):
        parse_port("0")
    with pytest.raises(ValueError, match="bad protocol"):
        parse_port("80/icmp")


def test_container_ports_from_the_manifest() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]},
        {"name": "b", "ports": [{"containerPort": 9000, "protocol": "SCTP"}]}]}}
    assert container_ports(pod) == ["80", "53", "9000/sctp"]
    assert container_ports({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{}]}}) == ["8080"]
