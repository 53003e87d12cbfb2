"""etcd's address from the kubelet's kubeconfig (the chart's default when etcd.endpoints is unset)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apps.vswitch.etcdaddr import EtcdAddressError, fill_etcd_endpoints, server_host

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://10.0.0.9:6443"}
- name: lab
  cluster: {server: "https://192.168.16.1:6443", certificate-authority: /etc/kubernetes/pki/ca.crt}
contexts:
- name: lab
  context: {cluster: lab, user: node}
current-context: lab
users:
- name: node
  user: {client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem}
"""


def test_the_current_contexts_server_host_with_the_given_port(tmp_path: Path) -> None:
    conf = tmp_path / "kubelet.conf"
    conf.write_text(KUBECONFIG)
    assert server_host(conf) == "192.168.16.1"
    env = {"CONTIV_ETCD_FROM_KUBECONFIG": f"{conf}:12379"}
    assert fill_etcd_endpoints(env) == "192.168.16.1:12379" and env["ETCD_ENDPOINTS"] == "192.168.16.1:12379"
    conf.write_text(KUBECONFIG.replace("https://192.168.16.1:6443", "https://[fd00::1]:6443"))
    env = {"CONTIV_ETCD_FROM_KUBECONFIG": f"{conf}:12379"}
    assert fill_etcd_endpoints(env) == "[fd00::1]:12379"


def test_etcd_endpoints_given_wins(tmp_path: Path) -> None:
    env = {"CONTIV_ETCD_FROM_KUBECONFIG": f"{tmp_path}/absent:12379", "ETCD_ENDPOINTS": "10.1.2.3:2379"}
    assert fill_etcd_endpoints(env) == "10.1.2.3:2379"


@pytest.mark.parametrize(("content", "spec", "expected"), [
    (None, "{d}/absent.conf:12379", "cannot read the kubelet's kubeconfig"),
    ("clusters: [}", "{d}/k.conf:12379", "is not YAML"),
    ("- a list", "{d}/k.conf:12379", "no mapping at the top"),
    ("clusters: [{name: a, cluster: {server: x}}, {name: b, cluster: {}}]", "{d}/k.conf:12379", "no current-context"),
    ("clusters: [{name: a, cluster: {server: 'not a url'}}]", "{d}/k.conf:12379", "has no host"),
    ("clusters: []", "{d}/k.conf", "must be PATH:PORT"),
    ("clusters: []", "{d}/k.conf:99999", "must be PATH:PORT"),
])
def test_bad_input_names_what_is_wrong(tmp_path: Path, content: str | None, spec: str, expected: str) -> None:
    if content is not None:
        (tmp_path / "k.conf").write_text(content)
    with pytest.raises(EtcdAddressError, match=expected):
        fill_etcd_endpoints({"CONTIV_ETCD_FROM_KUBECONFIG": spec.format(d=tmp_path)})


def test_the_agent_refuses_to_start_with_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "apps.vswitch.main", "--validate-config"], capture_output=True,
                         text=True, timeout=60,
                         env={"CONTIV_ETCD_FROM_KUBECONFIG": f"{tmp_path}/none.conf:12379", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert "cannot read the kubelet's kubeconfig" in out.stderr and "etcd.endpoints" in out.stderr
