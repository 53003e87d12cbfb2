"""The lab's etcd, a 3-member cluster, as ``contiv-lab up --etcd-members 3`` runs it: mutual TLS
between clients and members, etcd auth with a user per node's agent. The lab coming up at all
shows KSR and the agents working through it; here, what is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.lab import env as lab_env
from apps.lab import etcd, netns
from apps.lab.cluster import Lab

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(600)]
LAB = f"se{os.getpid() % 10000}"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    made = Lab(LAB)
    try:
        made.up(2, etcd_members=3)
        yield made
    finally:
        Lab(LAB).down()


def etcdctl(lab: Lab, *args: str, user: str = "root") -> subprocess.CompletedProcess[str]:
    return netns.run(etcd.etcdctl(lab.state, "--command-timeout=5s", *args, user=user),
                     netns=lab.state.underlay_ns, check=False)


def test_members_and_clients_use_tls(lab: Lab) -> None:
    members = etcdctl(lab, "member", "list", "-w", "simple").stdout.splitlines()
    assert len(members) == 3 and all("https://" in m and "http://" not in m for m in members), members
    assert etcd.leader(lab) is not None


def test_without_a_certificate_the_lab_etcd_refuses(lab: Lab) -> None:
    first = lab.state.etcd_endpoint.split(",")[0]
    plain = netns.run(["etcdctl", f"--endpoints=http://{first}", "--command-timeout=3s", "get", "--prefix", "/"],
                      netns=lab.state.underlay_ns, check=False)
    assert plain.returncode != 0 and not plain.stdout
    no_cert = netns.run(["etcdctl", f"--endpoints=https://{first}", f"--cacert={lab.state.pki / 'ca.crt'}",
                         "--command-timeout=3s", "get", "--prefix", "/"], netns=lab.state.underlay_ns, check=False)
    assert no_cert.returncode != 0 and not no_cert.stdout


def test_a_node_agent_writes_only_its_node_and_netctl_only_reads(lab: Lab) -> None:
    assert etcdctl(lab, "put", "/vnf-agent/node1/config/probe", "1", user="agent-node1").returncode == 0
    for user, key in (("agent-node1", "/vnf-agent/node2/config/probe"),
                      ("agent-node1", "/vnf-agent/contiv-ksr/k8s/policy/default/x"),
                      ("netctl", "/vnf-agent/node1/config/probe")):
        out = etcdctl(lab, "put", key, "1", user=user)
        assert out.returncode != 0 and "permission denied" in out.stderr, (user, key, out.stderr)
    assert etcdctl(lab, "del", "/vnf-agent/node1/config/probe", user="agent-node1").returncode == 0


def test_contiv_lab_env_gives_netctl_its_read_only_certificate(lab: Lab) -> None:
    exports = lab_env.exports(lab.state)
    assert exports["ETCDCTL_CERT"].endswith("/netctl.crt")
    out = subprocess.run([sys.executable, "-m", "apps.netctl.main", "-o", "json", "nodes"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT), **exports))
    assert out.returncode == 0, out.stderr
    assert '"node1"' in out.stdout and '"node2"' in out.stdout
