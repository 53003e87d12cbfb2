"""The Helm chart and the manifest rendered from it: lint, render (Helm v4 as a library),
every object valid for Kubernetes 1.30 and the newest schema kubernetes-validate bundles,
the generated app configs accepted by the apps themselves, deploy/contiv.yaml up to date."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from apps.vswitch.container import VSwitchContainer
from core.di import builtin_plugins

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "contiv"
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# The service plugin (issue 12) is toggled on where this agent build has it.
HAS_SERVICE = "service" in builtin_plugins(VSwitchContainer)
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "stn, service, exposed REST, vpp": {"stn": {"enabled": True}, "plugins": {"service": HAS_SERVICE},
                                        "agent": {"rest": {"expose": True}}, "dataplane": "vpp"},
    "no policy, node interface, 3 KSR replicas": {"plugins": {"policy": False}, "ksr": {"replicas": 3},
                                                  "ipam": {"nodeInterface": "eth0"}},
    "pod subnets from the Nodes, given API server and etcd": {
        "ipam": {"podSubnetSource": "kubernetes", "podSubnetCIDR": "10.244.0.0/16"},
        "apiServer": {"host": "10.0.0.1"}, "etcd": {"endpoints": ["10.0.0.5:12379"]}},
}


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_render", ROOT / "deploy" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _render_module()


def rendered(values: dict[str, Any]) -> list[dict[str, Any]]:
    return list(render.objects(render.render(values)))


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_chart_lints_strict(kube: str) -> None:
    for values in VARIANTS.values():
        report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{kube}")
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_validates_strictly(variant: str) -> None:
    objs = rendered(VARIANTS[variant])
    assert len(objs) >= 10
    for obj in objs:
        for kube in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, kube, strict=True)


def test_the_validator_rejects_an_unknown_field() -> None:
    """Negative control: strict validation really checks fields."""
    ds = find(rendered({}), "DaemonSet", "contiv-vswitch")
    ds["spec"]["template"]["spec"]["hostNetwrok"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, "1.30.0", strict=True)


def app_validates(tmp_path: Path, module: str, config: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{module}.yaml"
    path.write_text(config)
    return subprocess.run([sys.executable, "-m", module, "--config", str(path), "--validate-config"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_generated_configs_pass_the_apps_own_validation(variant: str, tmp_path: Path) -> None:
    objs = rendered(VARIANTS[variant])
    apps = [("contiv-agent-cfg", "agent.yaml", "apps.vswitch.main"), ("contiv-ksr-cfg", "ksr.yaml", "apps.ksr.main")]
    if VARIANTS[variant].get("stn", {}).get("enabled"):
        apps.append(("contiv-stn-cfg", "stn.yaml", "apps.stn.main"))
    for cm, key, module in apps:
        out = app_validates(tmp_path, module, find(objs, "ConfigMap", cm)["data"][key])
        assert out.returncode == 0, f"{cm}: {out.stdout}{out.stderr}"
    bad = yaml.safe_load(find(objs, "ConfigMap", "contiv-agent-cfg")["data"]["agent.yaml"])
    bad["ipam"]["pod_subnet_cidr"] = "10.1.0.0/33"
    out = app_validates(tmp_path, "apps.vswitch.main", yaml.safe_dump(bad))
    assert out.returncode == 2 and "pod_subnet_cidr" in out.stdout + out.stderr


def test_toggles_and_values_reach_the_objects() -> None:
    plain = rendered({})
    agent = yaml.safe_load(find(plain, "ConfigMap", "contiv-agent-cfg")["data"]["agent.yaml"])
    app_default = yaml.safe_load((ROOT / "apps" / "vswitch" / "default.yaml").read_text())
    assert agent["plugins"] == app_default["plugins"]  # the app's own plugin set, in its order
    assert agent["controller"]["handler_order"] == app_default["controller"]["handler_order"]
    assert agent["http"] == {"address": "127.0.0.1", "port": 9999}
    assert [o for o in plain if o["metadata"]["name"] == "contiv-stn"] == []
    full = rendered(VARIANTS["stn, service, exposed REST, vpp"])
    agent = yaml.safe_load(find(full, "ConfigMap", "contiv-agent-cfg")["data"]["agent.yaml"])
    assert {"policy", "vpp"} <= set(agent["plugins"])
    if HAS_SERVICE:
        assert agent["controller"]["handler_order"][-2:] == ["service", "policy"]
    assert agent["http"]["address"] == "0.0.0.0" and agent["http"]["token_file"]
    ds = find(full, "DaemonSet", "contiv-vswitch")["spec"]["template"]["spec"]
    assert "rest-token" in {v["name"] for v in ds["volumes"]}
    assert find(full, "DaemonSet", "contiv-stn")["spec"]["template"]["spec"]["hostNetwork"] is True
    off = rendered(VARIANTS["no policy, node interface, 3 KSR replicas"])
    agent = yaml.safe_load(find(off, "ConfigMap", "contiv-agent-cfg")["data"]["agent.yaml"])
    assert "policy" not in agent["plugins"] and agent["ipam"]["node_interface"] == "eth0"
    assert find(off, "Deployment", "contiv-ksr")["spec"]["replicas"] == 3


def test_workloads_have_what_the_apps_need() -> None:
    objs = rendered({})
    vswitch = find(objs, "DaemonSet", "contiv-vswitch")["spec"]["template"]["spec"]
    assert vswitch["hostNetwork"] is True
    init = vswitch["initContainers"][0]
    assert init["command"][0] == "/opt/contiv/bin/contiv-cni-install"
    assert {m["mountPath"] for m in init["volumeMounts"]} == {"/host/opt/cni/bin", "/host/etc/cni/net.d",
                                                             "/var/lib/contiv"}
    agent = vswitch["containers"][0]
    assert "privileged" not in agent["securityContext"]  # capabilities only: tests/security/test_manifest_*
    assert "hostPID" not in vswitch
    assert {"/etc/contiv", "/var/run/contiv", "/var/lib/contiv", "/var/run/netns"} <= {
        m["mountPath"] for m in agent["volumeMounts"]}
    ksr = find(objs, "Deployment", "contiv-ksr")["spec"]["template"]["spec"]
    assert ksr["securityContext"]["runAsNonRoot"] is True and ksr["serviceAccountName"] == "contiv-ksr"
    rules = find(objs, "ClusterRole", "contiv-ksr")["rules"]
    assert {r for rule in rules for r in rule["resources"]} >= {
        "pods", "namespaces", "services", "nodes", "endpointslices", "networkpolicies"}
    assert all(set(rule["verbs"]) == {"get", "list", "watch"} for rule in rules)
    assert find(objs, "StatefulSet", "contiv-etcd")["spec"]["replicas"] == 1
    assert {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"} == {
        "contiv-certs", "contiv-etcd", "contiv-ksr", "contiv-vswitch"}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_nothing_contiv_needs_at_start_goes_through_a_service() -> None:
    """A cold start must not wait for what only contiv serves: no Service fronts etcd, KSR
    reaches the API server and etcd at real addresses, agents take etcd's host from the kubelet's
    kubeconfig (or the given endpoints)."""
    objs = rendered({})
    assert not [o for o in objs if o["kind"] == "Service"]
    etcd = find(objs, "StatefulSet", "contiv-etcd")["spec"]["template"]["spec"]
    assert etcd["hostNetwork"] is True and etcd["containers"][0]["image"].startswith("localhost/contiv-etcd:")
    assert "--listen-client-urls=https://$(HOST_IP):12379,https://127.0.0.1:12379" in etcd["containers"][0]["command"]
    ksr_pod = find(objs, "Deployment", "contiv-ksr")["spec"]
    ksr = env_of(ksr_pod["template"]["spec"]["containers"][0])
    assert ksr["KUBERNETES_SERVICE_HOST"] == "$(HOST_IP)" and ksr["KUBERNETES_SERVICE_PORT"] == "6443"
    assert ksr["ETCD_ENDPOINTS"] == "$(HOST_IP):12379"
    assert ksr_pod["template"]["spec"]["affinity"]["podAffinity"]  # beside the etcd member
    assert ksr_pod["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}  # fixed host port
    agent = env_of(find(objs, "DaemonSet", "contiv-vswitch")["spec"]["template"]["spec"]["containers"][0])
    assert agent["CONTIV_ETCD_FROM_KUBECONFIG"] == "/host/kubelet.conf:12379" and "ETCD_ENDPOINTS" not in agent
    assert agent["CONTIV_IPAM__NODE_IP"] == "$(HOST_IP)"
    given = rendered({"apiServer": {"host": "10.0.0.1", "port": 443},
                      "etcd": {"endpoints": ["10.0.0.5:12379", "10.0.0.6:12379"]}})
    ksr = env_of(find(given, "Deployment", "contiv-ksr")["spec"]["template"]["spec"]["containers"][0])
    assert ksr["KUBERNETES_SERVICE_HOST"] == "10.0.0.1" and ksr["KUBERNETES_SERVICE_PORT"] == "443"
    assert ksr["ETCD_ENDPOINTS"] == "10.0.0.5:12379,10.0.0.6:12379"
    assert "nodeSelector" not in find(given, "Deployment", "contiv-ksr")["spec"]["template"]["spec"]
    agent = env_of(find(given, "DaemonSet", "contiv-vswitch")["spec"]["template"]["spec"]["containers"][0])
    assert agent["ETCD_ENDPOINTS"] == "10.0.0.5:12379,10.0.0.6:12379" and "CONTIV_ETCD_FROM_KUBECONFIG" not in agent


def test_pod_subnets_from_the_nodes_reach_the_agent_config() -> None:
    objs = rendered(VARIANTS["pod subnets from the Nodes, given API server and etcd"])
    agent = yaml.safe_load(find(objs, "ConfigMap", "contiv-agent-cfg")["data"]["agent.yaml"])
    assert agent["ipam"]["pod_subnet_source"] == "kubernetes" and agent["ipam"]["pod_subnet_cidr"] == "10.244.0.0/16"
    default = yaml.safe_load(find(rendered({}), "ConfigMap", "contiv-agent-cfg")["data"]["agent.yaml"])
    assert "pod_subnet_source" not in default["ipam"]


def test_service_accounts_come_before_the_workloads_that_use_them() -> None:
    kinds = [o["kind"] for o in render.objects((ROOT / "deploy" / "contiv.yaml").read_text())]
    last_account = max(i for i, k in enumerate(kinds) if k == "ServiceAccount")
    first_workload = min(i for i, k in enumerate(kinds) if k in ("DaemonSet", "Deployment", "StatefulSet"))
    assert last_account < first_workload, kinds


def test_committed_manifest_is_a_fresh_render() -> None:
    committed = (ROOT / "deploy" / "contiv.yaml").read_text()
    assert committed == render.render({}), "deploy/contiv.yaml is stale: python3 deploy/render.py > deploy/contiv.yaml"
