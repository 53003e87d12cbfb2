"""contiv-cni as a subprocess against a real pod manager (gRPC on a unix socket) and real netns."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from plugins.podmanager.api import PodID
from plugins.podmanager.cnicodes import CNICode
from plugins.podmanager.cnispec import SUPPORTED_VERSIONS
from tests.apps.cni.conftest import Agent, Namespaces, host_ifname, run
from tests.apps.cni.helpers import exec_cni, netconf, pod_env

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
async def test_version(cni_bin: Path, version: str) -> None:
    out = await exec_cni(cni_bin, "VERSION", {"cniVersion": version}, {})
    assert out.status == 0
    assert out.output == {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


async def test_version_without_stdin_reports_latest(cni_bin: Path) -> None:
    out = await exec_cni(cni_bin, "VERSION", b"", {})
    assert out.status == 0 and out.output["cniVersion"] == "1.0.0"


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
async def test_add_check_del_lifecycle(
    cni_bin: Path, agent: Agent, namespaces: Namespaces, version: str
) -> None:
    pod_ns = namespaces.create("pod")
    netns = f"/var/run/netns/{pod_ns}"
    cid = uuid.uuid4().hex
    env = pod_env(cid, netns, "web")
    conf = netconf(version, agent.socket)

    added = await exec_cni(cni_bin, "ADD", conf, env)
    assert added.status == 0, added.output
    result = added.output
    assert result["cniVersion"] == version
    assert result["interfaces"] == [
        {"name": f"veth-{cid[:8]}"},
        {"name": "eth0", "sandbox": netns},
    ]
    ip = {"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 1}
    if version != "1.0.0":
        ip = {"version": "4", **ip}
    assert result["ips"] == [ip]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}]
    assert result["dns"] == {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
    assert "10.99.0.2/24" in run("ip", "-n", pod_ns, "addr", "show", "eth0").stdout

    if version != "0.3.1":
        checked = await exec_cni(cni_bin, "CHECK", {**conf, "prevResult": result}, env)
        assert (checked.status, checked.output) == (0, None)
        run("ip", "-n", pod_ns, "route", "del", "default")
        broken = await exec_cni(cni_bin, "CHECK", {**conf, "prevResult": result}, env)
        assert broken.status == 1
        assert broken.output["code"] == CNICode.CHECK_FAILED
        assert "route 0.0.0.0/0 via 10.99.0.1 is missing" in broken.output["msg"]
    else:
        old = await exec_cni(cni_bin, "CHECK", {**conf, "prevResult": result}, env)
        assert old.status == 1 and old.output["code"] == CNICode.INCOMPATIBLE_VERSION

    for _ in range(2):  # DEL is idempotent
        deleted = await exec_cni(cni_bin, "DEL", {**conf, "prevResult": result}, env)
        assert (deleted.status, deleted.output) == (0, None)
    assert agent.plugin.local_pods() == {}
    assert host_ifname(cid) not in run("ip", "-n", agent.node, "link").stdout
    assert "eth0" not in run("ip", "-n", pod_ns, "link").stdout


async def test_add_twice_for_same_container_is_safe(
    cni_bin: Path, agent: Agent, namespaces: Namespaces
) -> None:
    pod_ns = namespaces.create("pod")
    cid = uuid.uuid4().hex
    env = pod_env(cid, f"/var/run/netns/{pod_ns}", "web")
    conf = netconf("1.0.0", agent.socket)
    first = await exec_cni(cni_bin, "ADD", conf, env)
    second = await exec_cni(cni_bin, "ADD", conf, env)
    assert first.status == second.status == 0
    assert first.output == second.output
    check = await exec_cni(cni_bin, "CHECK", {**conf, "prevResult": second.output}, env)
    assert check.status == 0, check.output
    assert list(agent.plugin.local_pods()) == [PodID("web", "default")]


async def test_del_after_pod_namespace_is_gone(
    cni_bin: Path, agent: Agent, namespaces: Namespaces
) -> None:
    pod_ns = namespaces.create("pod")
    cid = uuid.uuid4().hex
    env = pod_env(cid, f"/var/run/netns/{pod_ns}", "web")
    conf = netconf("1.0.0", agent.socket)
    assert (await exec_cni(cni_bin, "ADD", conf, env)).status == 0
    run("ip", "netns", "del", pod_ns)
    deleted = await exec_cni(cni_bin, "DEL", conf, env)
    assert deleted.status == 0, deleted.output
    assert agent.plugin.local_pods() == {}


async def test_log_file_gets_one_line_per_call(
    cni_bin: Path, agent: Agent, namespaces: Namespaces, tmp_path: Path
) -> None:
    pod_ns = namespaces.create("pod")
    cid = uuid.uuid4().hex
    env = pod_env(cid, f"/var/run/netns/{pod_ns}", "web")
    log = tmp_path / "cni.log"
    conf = netconf("1.0.0", agent.socket, logFile=str(log))
    assert (await exec_cni(cni_bin, "ADD", conf, env)).status == 0
    assert (await exec_cni(cni_bin, "CHECK", {**conf, "prevResult": {}}, env)).status == 0
    bad = await exec_cni(cni_bin, "DEL", conf, {**env, "CNI_IFNAME": "x/y"})
    assert bad.status == 1
    assert (await exec_cni(cni_bin, "DEL", conf, env)).status == 0
    lines = log.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        f"ADD {cid} ok", f"CHECK {cid} ok",
        f"DEL {cid} failed: [4] CNI_IFNAME 'x/y' is not a valid name", f"DEL {cid} ok",
    ]
