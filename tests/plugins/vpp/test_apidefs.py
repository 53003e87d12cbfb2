"""The API definitions ship with the project: a copy of the repository alone runs the VPP tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from vpp_papi.vpp_papi import VPPApiJSONFiles

from plugins.vpp import apidefs
from plugins.vpp.config import VPPConfig

REPO = Path(__file__).resolve().parents[3]
#: ``call("msg"`` / ``dump("msg"`` including the multi-line form ``call(\n    "msg"``.
MESSAGE_USE = re.compile(r"\.(?:call|dump)\(\s*\"([a-z0-9_]+)\"")
#: The real-VPP test switch (see tests/vppreal); the copy runs the stand-in tests only.
REAL_VPP_ENV = "CONTIV_TEST_VPP_DIR"


def used_messages() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "plugins").rglob("*.py"):
        text = path.read_text()
        if "vpp" in path.relative_to(REPO).parts or "plugins.vpp" in text:  # code that talks to VPP
            names.update(MESSAGE_USE.findall(text))
    return names


def test_every_message_the_code_sends_is_defined_in_the_shipped_files() -> None:
    _files, messages, _services = VPPApiJSONFiles.load_api(apidir=[apidefs.bundled_api_dir()])
    used = used_messages()
    assert {"control_ping", "sw_interface_dump", "af_packet_create_v3"} <= used  # the scan works
    assert sorted(used - set(messages)) == []


def test_shipped_files_are_package_data_with_version_and_licence() -> None:
    readme = (apidefs.BUNDLED_API_DIR / "README.md").read_text()
    assert "v26.10-rc0" in readme and "Apache License 2.0" in readme
    setup = (REPO / "setup.cfg").read_text()
    assert "plugins.vpp = api/README.md, api/core/*.api.json, api/plugins/*.api.json" in setup
    shipped = {p.parent.name + "/" + p.name for p in apidefs.BUNDLED_API_DIR.rglob("*.api.json")}
    assert "core/memclnt.api.json" in shipped and "plugins/nat44_ed.api.json" in shipped


def test_installed_vpp_definitions_are_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "usr-share-vpp-api"
    monkeypatch.setattr(apidefs, "SYSTEM_API_DIR", system)
    assert apidefs.default_api_dir() == apidefs.bundled_api_dir()  # absent: the shipped ones
    (system / "core").mkdir(parents=True)
    assert apidefs.default_api_dir() == apidefs.bundled_api_dir()  # empty: still the shipped ones
    shutil.copy(apidefs.BUNDLED_API_DIR / "core" / "memclnt.api.json", system / "core")
    assert apidefs.default_api_dir() == str(system)
    assert VPPConfig().resolved_api_dir() == str(system)


def test_an_api_dir_without_definitions_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"vpp.api_dir .*nothing-here.*no memclnt.api.json"):
        VPPConfig(api_dir=str(tmp_path / "nothing-here"))
    assert VPPConfig(api_dir=apidefs.bundled_api_dir()).resolved_api_dir() == apidefs.bundled_api_dir()


def tracked_files() -> list[str]:
    listing = ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    out = subprocess.run(listing, capture_output=True, check=False)
    if out.returncode == 0 and out.stdout:
        return [f for f in out.stdout.decode().split("\0") if f]
    skip = {".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
    return [
        str(p.relative_to(REPO)) for p in REPO.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(REPO).parts)
    ]


@pytest.mark.timeout(600)
def test_a_copy_of_the_repository_alone_passes_the_vpp_tests(tmp_path: Path) -> None:
    """No shared reading folder beside the copy, no installed VPP definitions needed, the copy's own code."""
    copy = tmp_path / "clone"
    for rel in tracked_files():
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the working tree is not part of the clone
            dst = copy / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    assert not (copy.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != REAL_VPP_ENV}
    env["PYTHONPATH"] = str(copy)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not Path(p, "vpp").exists())
    probe = subprocess.run(
        [sys.executable, "-c", "import plugins.vpp.apidefs as a; print(a.bundled_api_dir())"],
        cwd=copy, env=env, capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == str(copy / "plugins" / "vpp" / "api")
    renderer = "tests/plugins/ipnet/renderer"
    tests = ["tests/plugins/vpp", f"{renderer}/test_vpp.py", f"{renderer}/test_vpp_ipnet.py",
             "tests/plugins/service/renderer/test_nat44.py", "tests/plugins/policy/renderer/test_acl.py"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests,
         "--deselect", "tests/plugins/vpp/test_apidefs.py::test_a_copy_of_the_repository_alone_passes_the_vpp_tests"],
        cwd=copy, env=env, capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"\b\d{2,} passed", run.stdout), run.stdout[-2000:]
    assert " failed" not in run.stdout and " error" not in run.stdout
