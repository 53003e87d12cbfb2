"""Every code block of ``docs/plugins.md`` is executed: Python in order, reference blocks against
the code, INI against the example's setup.cfg, YAML by the agent and KSR, shell blocks run."""

from __future__ import annotations

import configparser
import importlib
import inspect
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.lab.cluster import Lab
from plugins.ksr.convert import convert

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "plugins.md"
EXAMPLE = REPO / "examples" / "pod-tuning-plugin"
BLOCK = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
LANGUAGES = {"python", "yaml", "ini", "sh"}


def blocks(lang: str | None = None) -> list[tuple[str, dict[str, str], str]]:
    """(language, info attributes such as ``title=x``, body) of every fenced block."""
    found = []
    for match in BLOCK.finditer(GUIDE.read_text()):
        info = dict(part.split("=", 1) for part in match.group(2).split() if "=" in part)
        if lang is None or match.group(1) == lang:
            found.append((match.group(1), info, match.group(3)))
    return found


def test_every_block_has_a_language_this_test_checks() -> None:
    langs = [lang for lang, _, _ in blocks()]
    assert len(langs) >= 12 and set(langs) <= LANGUAGES, langs
    # An unclosed fence would swallow the rest of the page.
    assert GUIDE.read_text().count("```") == 2 * len(langs)


def test_python_blocks_run_in_order() -> None:
    module = types.ModuleType("plugins_guide")
    sys.modules[module.__name__] = module  # pydantic resolves the models' annotations here
    try:
        ran = 0
        for _, info, body in blocks("python"):
            if "reference" not in info:
                exec(compile(body, f"{GUIDE}:block{ran}", "exec"), module.__dict__)
                ran += 1
        assert ran >= 5
    finally:
        del sys.modules[module.__name__]


def _defined(body: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(body, "<reference>", "exec"), namespace)
    return namespace


def _same(documented: Any, real: Any, what: str) -> None:
    assert inspect.getdoc(documented) == inspect.getdoc(real), f"{what}: docstring differs"
    assert str(inspect.signature(documented)) == str(inspect.signature(real)), f"{what}: signature differs"


def test_reference_blocks_are_the_code() -> None:
    references = [(info["reference"], body) for _, info, body in blocks("python") if "reference" in info]
    assert {name for name, _ in references} == {"core.hookspecs", "plugins.controller.api.EventHandler"}
    for name, body in references:
        namespace = _defined(body)
        if name == "core.hookspecs":
            module = importlib.import_module(name)
            specs = {n for n, f in vars(module).items() if callable(f) and hasattr(f, "contiv_spec")}
            documented = {n for n, f in namespace.items() if isinstance(f, types.FunctionType)}
            assert documented == specs
            for spec in specs:
                _same(namespace[spec], getattr(module, spec), spec)
        else:
            module_name, cls_name = name.rsplit(".", 1)
            real = getattr(importlib.import_module(module_name), cls_name)
            mine = namespace[cls_name]
            methods = {n for n, f in vars(real).items() if callable(f) and not n.startswith("_")}
            assert {n for n, f in vars(mine).items() if callable(f) and not n.startswith("_")} == methods
            for method in methods:
                _same(getattr(mine, method), getattr(real, method), f"{cls_name}.{method}")


def test_ini_blocks_are_in_the_example() -> None:
    real = configparser.ConfigParser()
    real.read(EXAMPLE / "setup.cfg")
    checked = 0
    for _, _, body in blocks("ini"):
        shown = configparser.ConfigParser()
        shown.read_string(body)
        for section in shown.sections():
            for key, value in shown[section].items():
                assert real[section][key].split() == value.split(), f"[{section}] {key}"
                checked += 1
    assert checked


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), "."], cwd=EXAMPLE, check=True, capture_output=True, timeout=300)
    return target


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The titled YAML blocks as files, where the shell blocks run."""
    cwd = tmp_path_factory.mktemp("guide")
    for _, info, body in blocks("yaml"):
        if "title" in info:
            (cwd / info["title"]).write_text(body)
    return cwd


def env_with(site: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def test_yaml_blocks_are_accepted(site: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(site))
    from pod_tuning.config import PodTuningConfig
    from pod_tuning.model import parse_annotations

    kinds = []
    for index, (_, _, body) in enumerate(blocks("yaml")):
        doc = yaml.safe_load(body)
        if "plugins" in doc:
            path = workdir / f"block{index}.yaml"
            path.write_text(body)
            out = subprocess.run([sys.executable, "-m", "apps.vswitch.main", "--config", str(path),
                                  "--validate-config"], env=env_with(site), capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, f"yaml block {index}: {out.stderr}"
            kinds.append("agent")
        else:
            assert doc["kind"] == "Pod", f"yaml block {index} is neither an agent config nor a pod"
            _, pod = convert("pod", doc, ("tuning.example.com",))
            tuning = parse_annotations(getattr(pod, "annotations", {}), PodTuningConfig())
            assert tuning.errors == [] and tuning.mtu and tuning.sysctls
            kinds.append("pod")
    assert sorted(kinds) == ["agent", "agent", "pod"]


@pytest.fixture
def lab_name() -> Iterator[str]:
    name = f"pg{os.getpid() % 100000}"
    try:
        yield name
    finally:
        Lab(name).down()  # also after a failed block


@pytest.mark.netns
def test_shell_blocks_run(site: Path, workdir: Path, lab_name: str) -> None:
    env = env_with(site, CONTIV_LAB_NAME=lab_name)
    outputs = []
    for index, (_, _, body) in enumerate(blocks("sh")):
        out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=workdir, env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, f"sh block {index}:\n{out.stdout}\n{out.stderr}"
        outputs.append(out.stdout)
    assert "pod-tuning" in outputs[0] and "entry-point:contiv-pod-tuning-plugin" in outputs[0]
    assert "pod/default/tuned on node1" in outputs[-1]
    assert not Lab(lab_name).exists  # the block's own `down` ran
