"""contiv-cni-install into temporary host directories: the binary it writes runs on a bare
python3 (standard library only), the conflist chains portmap, uninstall removes only its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "net.d").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "apps.cni.install", "--bin-dir", str(tmp_path / "bin"),
                           "--conf-dir", str(tmp_path / "net.d"), *args],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_install_writes_a_runnable_binary_and_a_portmap_chain(tmp_path: Path) -> None:
    out = install(tmp_path, "--grpc-server", "/run/x/cni.sock")
    assert out.returncode == 0, out.stderr
    binary = tmp_path / "bin" / "contiv-cni"
    assert os.access(binary, os.X_OK)
    conf = json.loads((tmp_path / "net.d" / "10-contiv.conflist").read_text())
    assert conf["name"] == "contiv" and [p["type"] for p in conf["plugins"]] == ["contiv-cni", "portmap"]
    assert conf["plugins"][0]["grpcServer"] == "/run/x/cni.sock"
    assert conf["plugins"][1]["capabilities"] == {"portMappings": True}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["10-contiv.conflist", "bin", "contiv-cni", "net.d"]
    members = zipfile.ZipFile(binary).namelist()
    assert "apps/cni/main.py" in members and "apps/cni/wire.py" in members
    assert "hpack/__init__.py" in members  # the pure-Python package wire.py decodes trailers with
    assert not any(m.startswith(("core/", "grpc", "pydantic")) for m in members)
    code = f"import sys; sys.path.insert(0, {str(binary)!r}); import hpack, apps.cni.wire; print(hpack.__file__)"
    lazy = subprocess.run(["python3", "-I", "-c", code], capture_output=True, text=True, cwd="/",
                          env={"PATH": "/usr/bin:/bin"})
    assert lazy.returncode == 0 and lazy.stdout.startswith(str(binary)), lazy.stderr
    # No PYTHONPATH, no site-packages: the zip holds everything the binary imports.
    bare = {"PATH": "/usr/bin:/bin"}
    version = subprocess.run([str(binary)], env={**bare, "CNI_COMMAND": "VERSION"}, capture_output=True,
                             text=True, input="{}", cwd="/")
    assert version.returncode == 0, version.stderr
    assert "1.0.0" in json.loads(version.stdout)["supportedVersions"]
    add = subprocess.run(["python3", "-I", str(binary)], capture_output=True, text=True, cwd="/",
                         env={**bare, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net",
                              "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
                              "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1"},
                         input=json.dumps({"cniVersion": "1.0.0", "name": "contiv", "type": "contiv-cni",
                                           "grpcServer": str(tmp_path / "no.sock")}))
    assert add.returncode != 0
    err = json.loads(add.stdout)
    assert err["code"] == 11 and "not reachable" in err["msg"]


def test_no_portmap_reinstall_and_uninstall(tmp_path: Path) -> None:
    assert install(tmp_path).returncode == 0
    assert install(tmp_path, "--no-portmap").returncode == 0
    conf = json.loads((tmp_path / "net.d" / "10-contiv.conflist").read_text())
    assert [p["type"] for p in conf["plugins"]] == ["contiv-cni"]
    out = install(tmp_path, "--uninstall")
    assert out.returncode == 0 and out.stdout.count("removed") == 2
    assert list((tmp_path / "bin").iterdir()) == [] and list((tmp_path / "net.d").iterdir()) == []


def test_uninstall_leaves_another_network_and_bad_dirs_are_named(tmp_path: Path) -> None:
    (tmp_path / "net.d").mkdir()
    other = tmp_path / "net.d" / "10-contiv.conflist"
    other.write_text(json.dumps({"name": "calico", "plugins": []}))
    out = install(tmp_path, "--uninstall")
    assert out.returncode == 1 and "configures network 'calico', not 'contiv': not removed" in out.stderr
    assert other.exists()
    out = subprocess.run([sys.executable, "-m", "apps.cni.install", "--bin-dir", str(tmp_path / "absent"),
                          "--conf-dir", str(tmp_path / "net.d")], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 1 and f"{tmp_path / 'absent'} is not a directory" in out.stderr


def test_the_binary_holds_what_main_imports_and_refuses_third_party_imports(tmp_path: Path) -> None:
    from apps.cni.install import InstallError, cni_modules

    modules = cni_modules()
    assert {"apps.cni.main", "apps.cni.client", "apps.cni.wire", "plugins.podmanager.cnicodes"} <= set(modules)
    assert not any(m.startswith(("plugins.podmanager.plugin", "core")) for m in modules)
    (tmp_path / "apps" / "cni").mkdir(parents=True)
    (tmp_path / "apps" / "__init__.py").write_text("")
    (tmp_path / "apps" / "cni" / "__init__.py").write_text("")
    (tmp_path / "apps" / "cni" / "main.py").write_text("def main():\n    from apps.cni import helper\n")
    (tmp_path / "apps" / "cni" / "helper.py").write_text("import pydantic_core\n")
    try:
        cni_modules(tmp_path)
    except InstallError as err:
        assert "helper.py imports pydantic_core, which has compiled parts" in str(err)
    else:
        raise AssertionError("a compiled third-party import was not refused")
    (tmp_path / "apps" / "cni" / "helper.py").write_text("import hpack\n")
    vendored: dict[str, Path] = {}
    cni_modules(tmp_path, vendored)
    assert "hpack/__init__.py" in vendored and "hpack/hpack.py" in vendored
