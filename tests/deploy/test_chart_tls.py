"""The chart's etcd: mutual TLS always, on the node's address and loopback only, the certificates
from contiv-certs' Job (or the user's Secrets), mounted read-only where each client needs them,
and the generated configs naming each component's own certificate (its etcd user)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.test_chart import ROOT, find, render, rendered


def containers(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, dict[str, Any]]:
    spec = find(objs, kind, name)["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def volumes(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in find(objs, kind, name)["spec"]["template"]["spec"]["volumes"]}


def test_etcd_requires_client_certificates_and_listens_on_no_wildcard() -> None:
    objs = rendered({})
    cmd = containers(objs, "StatefulSet", "contiv-etcd")["etcd"]["command"]
    assert {"--client-cert-auth", "--peer-client-cert-auth", "--trusted-ca-file=/etc/contiv/tls/ca.crt",
            "--peer-trusted-ca-file=/etc/contiv/tls/ca.crt", "--cert-file=/etc/contiv/tls/etcd-server.crt",
            "--peer-cert-file=/etc/contiv/tls/etcd-peer.crt"} <= set(cmd)
    urls = [a for a in cmd if "-urls=" in a or a.startswith("--initial-cluster=")]
    assert urls and all("http://" not in u and "0.0.0.0" not in u for u in urls)
    assert "--listen-client-urls=https://$(HOST_IP):12379,https://127.0.0.1:12379" in cmd
    # No Service of any type (a NodePort would open etcd on every node).
    assert not [o for o in objs if o["kind"] == "Service"]
    text = (ROOT / "deploy" / "contiv.yaml").read_text()
    assert "nodePort" not in text and "type: NodePort" not in text and "http://0.0.0.0" not in text


def test_certificates_come_from_the_job_and_reach_each_pod_read_only() -> None:
    objs = rendered({})
    job = find(objs, "Job", "contiv-certs")["spec"]["template"]["spec"]
    assert job["hostNetwork"] is True and job["containers"][0]["command"][:2] == [
        "/opt/contiv/bin/contiv-certs", "kube-secret"]
    rules = find(objs, "Role", "contiv-certs")["rules"]
    assert {v for r in rules for v in r["verbs"]} == {"create", "get"}
    for kind, name, container in (("StatefulSet", "contiv-etcd", "etcd"), ("Deployment", "contiv-ksr", "contiv-ksr"),
                                  ("DaemonSet", "contiv-vswitch", "contiv-vswitch")):
        mounts = {m["name"]: m for m in containers(objs, kind, name)[container]["volumeMounts"]}
        assert mounts["tls"]["mountPath"] == "/etc/contiv/tls" and mounts["tls"]["readOnly"] is True
        assert volumes(objs, kind, name)["tls"]["secret"]["secretName"] == "contiv-tls"
    # root's certificate: only the etcd pod's auth set-up container.
    workloads = [o for o in objs if o["kind"] in ("DaemonSet", "Deployment", "StatefulSet", "Job")]
    holders = [(o["metadata"]["name"], c["name"])
               for o in workloads for c in o["spec"]["template"]["spec"]["containers"]
               if any(m["name"] == "etcd-root" for m in c.get("volumeMounts", []))]
    assert holders == [("contiv-etcd", "etcd-auth")]
    auth = containers(objs, "StatefulSet", "contiv-etcd")["etcd-auth"]
    assert auth["command"][:2] == ["/opt/contiv/bin/contiv-certs", "etcd-auth"]


def test_each_component_uses_its_own_certificate() -> None:
    objs = rendered({})
    agent = yaml.safe_load(find(objs, "ConfigMap", "contiv-agent-cfg")["data"]["agent.yaml"])
    ksr = yaml.safe_load(find(objs, "ConfigMap", "contiv-ksr-cfg")["data"]["ksr.yaml"])
    assert agent["kvdb"]["tls"]["cert_file"] == "/etc/contiv/tls/agent.crt"
    assert ksr["kvdb"]["tls"]["cert_file"] == "/etc/contiv/tls/ksr.crt"
    assert "insecure" not in agent["kvdb"] and "insecure" not in ksr["kvdb"]


def test_users_own_secrets_replace_the_job() -> None:
    objs = rendered({"tls": {"existingSecret": "my-tls", "existingRootSecret": "my-root"}})
    assert not [o for o in objs if o["kind"] == "Job"]
    assert volumes(objs, "DaemonSet", "contiv-vswitch")["tls"]["secret"]["secretName"] == "my-tls"
    assert volumes(objs, "StatefulSet", "contiv-etcd")["etcd-root"]["secret"]["secretName"] == "my-root"
    with pytest.raises(Exception, match=r"tls\.existingSecret needs tls\.existingRootSecret"):
        render.render({"tls": {"existingSecret": "my-tls"}})
