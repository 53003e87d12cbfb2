"""contiv-cni-install into temporary host directories: the static binary and the reference
plugins the conflist needs on an empty bin dir (a node's own plugins kept), the staged conflist
(portmap without kube-proxy's chain), uninstall removing only its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apps.cni.binary import cni_binary

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path("/usr/lib/cni")  # Debian's containernetworking-plugins


@pytest.fixture(scope="module")
def binary() -> Path:
    return cni_binary(build=True)


def install(tmp_path: Path, binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "net.d").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "apps.cni.install", "--bin-dir", str(tmp_path / "bin"),
                           "--conf-dir", str(tmp_path / "net.d"), "--cni-binary", str(binary),
                           "--staged-conf", str(tmp_path / "lib" / "10-contiv.conflist"), *args],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_empty_bin_dir_gets_the_binary_loopback_and_portmap(tmp_path: Path, binary: Path) -> None:
    out = install(tmp_path, binary, "--grpc-server", "/run/x/cni.sock")
    assert out.returncode == 0, out.stderr
    bin_dir = tmp_path / "bin"
    assert sorted(p.name for p in bin_dir.iterdir()) == ["contiv-cni", "loopback", "portmap"]
    installed = bin_dir / "contiv-cni"
    assert installed.read_bytes() == binary.read_bytes() and os.access(installed, os.X_OK)
    for name in ("loopback", "portmap"):
        assert (bin_dir / name).read_bytes() == (REFERENCE / name).read_bytes()
        assert os.access(bin_dir / name, os.X_OK)
    assert "statically linked" in subprocess.run(["file", str(installed)], capture_output=True,
                                                 text=True).stdout
    # The conflist is staged for the agent, not in the runtime's conf dir.
    assert list((tmp_path / "net.d").iterdir()) == []
    conf = json.loads((tmp_path / "lib" / "10-contiv.conflist").read_text())
    assert conf["name"] == "contiv" and [p["type"] for p in conf["plugins"]] == ["contiv-cni", "portmap"]
    assert conf["plugins"][0]["grpcServer"] == "/run/x/cni.sock"
    # No kube-proxy chain (KUBE-MARK-MASQ) named: contiv replaces kube-proxy.
    assert conf["plugins"][1] == {"type": "portmap", "capabilities": {"portMappings": True}}
    # Nothing but the binary: no interpreter, no PYTHONPATH, an empty environment.
    version = subprocess.run([str(installed)], env={"CNI_COMMAND": "VERSION"}, capture_output=True,
                             text=True, input="{}", cwd="/")
    assert version.returncode == 0, version.stderr
    assert json.loads(version.stdout)["supportedVersions"] == ["0.3.1", "0.4.0", "1.0.0"]
    sock = tmp_path / "no.sock"
    add = subprocess.run([str(installed)], capture_output=True, text=True, cwd="/",
                         env={"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net",
                              "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
                              "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1"},
                         input=json.dumps({"cniVersion": "1.0.0", "name": "contiv", "type": "contiv-cni",
                                           "grpcServer": str(sock)}))
    assert add.returncode == 1
    err = json.loads(add.stdout)
    assert err["code"] == 11 and "not reachable" in err["msg"] and str(sock) in err["msg"]


def test_a_plugin_the_node_has_is_kept(tmp_path: Path, binary: Path) -> None:
    (tmp_path / "bin").mkdir()
    own = tmp_path / "bin" / "portmap"
    own.write_text("#!/bin/sh\n# the node's own portmap\n")
    own.chmod(0o755)
    out = install(tmp_path, binary)
    assert out.returncode == 0, out.stderr
    assert own.read_text() == "#!/bin/sh\n# the node's own portmap\n"
    assert (tmp_path / "bin" / "loopback").read_bytes() == (REFERENCE / "loopback").read_bytes()


def test_a_missing_plugin_is_named(tmp_path: Path, binary: Path) -> None:
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    out = install(tmp_path, binary, "--plugins-dir", str(empty))
    assert out.returncode == 1
    assert f"plugin loopback is neither in {tmp_path / 'bin'} nor in {empty}" in out.stderr


def test_direct_conf_no_portmap_reinstall_and_uninstall(tmp_path: Path, binary: Path) -> None:
    assert install(tmp_path, binary).returncode == 0
    assert install(tmp_path, binary, "--no-portmap", "--conf-dir-direct").returncode == 0
    conf = json.loads((tmp_path / "net.d" / "10-contiv.conflist").read_text())
    assert [p["type"] for p in conf["plugins"]] == ["contiv-cni"]
    out = install(tmp_path, binary, "--uninstall")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("removed") == 3  # the conflist in net.d, the staged one, the binary
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["loopback", "portmap"]
    assert list((tmp_path / "net.d").iterdir()) == [] and list((tmp_path / "lib").iterdir()) == []


def test_uninstall_leaves_another_network_and_bad_dirs_are_named(tmp_path: Path, binary: Path) -> None:
    (tmp_path / "net.d").mkdir()
    other = tmp_path / "net.d" / "10-contiv.conflist"
    other.write_text(json.dumps({"name": "calico", "plugins": []}))
    out = install(tmp_path, binary, "--uninstall")
    assert out.returncode == 1 and "configures network 'calico', not 'contiv': not removed" in out.stderr
    assert other.exists()
    out = subprocess.run([sys.executable, "-m", "apps.cni.install", "--bin-dir", str(tmp_path / "absent"),
                          "--conf-dir", str(tmp_path / "net.d"), "--cni-binary", str(binary)],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 1 and f"{tmp_path / 'absent'} is not a directory" in out.stderr
    out = install(tmp_path, tmp_path / "net.d" / "10-contiv.conflist")
    assert out.returncode == 1 and "is not an executable ELF file" in out.stderr


@pytest.mark.parametrize("managed", [True, False])
def test_chart_stages_the_conflist_for_the_agent(managed: bool) -> None:
    """cni.agentManagesConf: the init container stages, the agent gets the host's conf dir and
    settings its podmanager accepts; off: the init container writes into the conf dir."""
    from plugins.podmanager.config import PodManagerConfig
    from tests.deploy.test_chart import find, rendered

    spec = find(rendered({"cni": {"agentManagesConf": managed, "removeConfOnStop": False}}),
                "DaemonSet", "contiv-vswitch")["spec"]["template"]["spec"]
    init, agent = spec["initContainers"][0], spec["containers"][0]
    env = {e["name"]: e.get("value") for e in agent["env"]}
    mounts = {m["mountPath"]: m["name"] for m in agent["volumeMounts"]}
    if not managed:
        assert "--conf-dir-direct" in init["command"]
        assert not any(k.startswith("CONTIV_PODMANAGER__") for k in env)
        assert "/host/etc/cni/net.d" not in mounts
        return
    assert "--staged-conf=/var/lib/contiv/cni/10-contiv.conflist" in init["command"]
    assert mounts["/host/etc/cni/net.d"] == "cni-conf" and mounts["/var/lib/contiv"] == "state"
    config = PodManagerConfig.model_validate({
        "staged_conflist": env["CONTIV_PODMANAGER__STAGED_CONFLIST"],
        "cni_conf_dir": env["CONTIV_PODMANAGER__CNI_CONF_DIR"],
        "remove_conf_on_stop": yaml.safe_load(env["CONTIV_PODMANAGER__REMOVE_CONF_ON_STOP"]),
    })
    assert config.staged_conflist == "/var/lib/contiv/cni/10-contiv.conflist"
    assert config.cni_conf_dir == "/host/etc/cni/net.d" and config.remove_conf_on_stop is False
