"""What the rendered manifests grant: no privileged container, no host PID or IPC namespace, only
the capabilities docs/security.md lists (and why), KSR non-root and read-only, RBAC read-only.

Checked on the committed deploy/contiv.yaml, unmodified (what users apply), and on the chart
rendered with the optional parts on (STN, the exposed REST, the VPP dataplane)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import render

ROOT = Path(__file__).resolve().parents[2]
#: Container -> the capabilities it may add (docs/security.md, "Least privilege").
ALLOWED_CAPS: dict[str, set[str]] = {
    "contiv-vswitch": {"NET_ADMIN", "SYS_ADMIN"},  # netlink + nftables; setns into pods' namespaces
    "contiv-stn": {"NET_ADMIN"},  # the stolen NIC's addresses and routes
}
WORKLOADS = {"DaemonSet", "Deployment", "StatefulSet", "Job", "CronJob", "Pod", "ReplicaSet"}
READ_VERBS = {"get", "list", "watch"}


def committed() -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all((ROOT / "deploy" / "contiv.yaml").read_text()) if o]


def everything_on() -> list[dict[str, Any]]:
    return list(render.objects(render.render({"stn": {"enabled": True}, "agent": {"rest": {"expose": True}},
                                              "dataplane": "vpp"})))


def pod_specs(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for obj in objs:
        if obj["kind"] not in WORKLOADS:
            continue
        spec = obj["spec"]
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        out[f"{obj['kind']}/{obj['metadata']['name']}"] = spec if obj["kind"] == "Pod" else spec["template"]["spec"]
    return out


MANIFESTS = {"committed deploy/contiv.yaml": committed, "stn + exposed REST + vpp": everything_on}


@pytest.mark.parametrize("which", list(MANIFESTS))
def test_no_container_is_privileged_and_each_adds_only_what_it_needs(which: str) -> None:
    specs = pod_specs(MANIFESTS[which]())
    assert "DaemonSet/contiv-vswitch" in specs and "Deployment/contiv-ksr" in specs
    for workload, spec in specs.items():
        for key in ("hostPID", "hostIPC"):
            assert not spec.get(key), f"{workload}: {key}"
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{workload} container {container['name']}"
            sc = container.get("securityContext") or {}
            assert not sc.get("privileged"), f"{where} is privileged"
            assert sc.get("procMount", "Default") == "Default", where
            caps = sc.get("capabilities") or {}
            added = set(caps.get("add") or [])
            assert added <= ALLOWED_CAPS.get(container["name"], set()), f"{where} adds {sorted(added)}"
            if added or container["name"] in ALLOWED_CAPS:
                assert caps.get("drop") == ["ALL"], f"{where}: adds capabilities without dropping the rest"


@pytest.mark.parametrize("which", list(MANIFESTS))
def test_ksr_is_non_root_read_only_and_its_rbac_reads_only(which: str) -> None:
    objs = MANIFESTS[which]()
    ksr = pod_specs(objs)["Deployment/contiv-ksr"]
    assert ksr["securityContext"]["runAsNonRoot"] is True and ksr["securityContext"]["runAsUser"] != 0
    (container,) = ksr["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    roles = [o for o in objs if o["kind"] in ("ClusterRole", "Role")]
    assert roles, "no RBAC rendered"
    # The one writer: the certificates Job creates the two TLS Secrets once, and reads only them
    # (a namespaced Role; create cannot be limited by name). docs/etcd-tls.md.
    certs = [r for r in roles if r["metadata"]["name"] == "contiv-certs"]
    assert [r["kind"] for r in certs] == ["Role"]
    assert certs[0]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["contiv-tls", "contiv-etcd-root"],
         "verbs": ["get"]}]
    for role in (r for r in roles if r["metadata"]["name"] != "contiv-certs"):
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= READ_VERBS, f"{role['metadata']['name']}: {rule}"
            assert "secrets" not in rule.get("resources", []), f"{role['metadata']['name']} reads Secrets"


def test_only_ksr_holds_a_service_account_token() -> None:
    """And the certificates Job, which creates the TLS Secrets once at install."""
    for workload, spec in pod_specs(everything_on()).items():
        if workload not in ("Deployment/contiv-ksr", "Job/contiv-certs"):
            assert spec.get("automountServiceAccountToken") is False, workload


def test_the_vswitch_mounts_what_replaces_privileged_and_no_more() -> None:
    vswitch = pod_specs(committed())["DaemonSet/contiv-vswitch"]
    volumes = {v["name"]: v for v in vswitch["volumes"]}
    assert volumes["host-proc-sys-net"]["hostPath"]["path"] == "/proc/sys/net"  # sysctls, not /proc/sys
    host_paths = {v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v}
    assert not {"/", "/proc", "/sys", "/dev", "/var/run/docker.sock", "/run/containerd"} & host_paths
    agent = vswitch["containers"][0]
    config = yaml.safe_load(next(o for o in committed() if o["kind"] == "ConfigMap"
                                 and o["metadata"]["name"] == "contiv-agent-cfg")["data"]["agent.yaml"])
    assert config["linux"]["sysctl_dir"] == "/host/proc/sys"
    assert "/host/proc/sys/net" in {m["mountPath"] for m in agent["volumeMounts"]}


def test_the_exposed_rest_serves_https_with_the_shared_certificate() -> None:
    objs = everything_on()
    config = yaml.safe_load(next(o for o in objs if o["kind"] == "ConfigMap"
                                 and o["metadata"]["name"] == "contiv-agent-cfg")["data"]["agent.yaml"])
    http = config["http"]
    assert http["address"] == "0.0.0.0" and http["token_file"]
    assert http["tls_cert_file"] == "/etc/contiv/tls/rest.crt" and http["tls_key_file"] == "/etc/contiv/tls/rest.key"
    agent = pod_specs(objs)["DaemonSet/contiv-vswitch"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert agent[probe]["httpGet"]["scheme"] == "HTTPS" and agent[probe]["httpGet"]["host"] == "127.0.0.1"
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    assert mounts["/etc/contiv/tls"]["readOnly"] is True
