"""The examples stay on the public plugin API (``contiv_sdk``), enforced by import-linter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import contiv_sdk
import contiv_sdk.testing

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def lint_imports(config: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*(str(p) for p in paths), str(REPO)]))
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", script, "--config", str(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_examples_import_only_contiv_sdk() -> None:
    out = lint_imports(EXAMPLES / "importlinter.ini", EXAMPLES / "hello-plugin", EXAMPLES / "pod-tuning-plugin")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "examples import contiv-py only through contiv_sdk KEPT" in out.stdout


def test_the_contract_catches_an_internal_import(tmp_path: Path) -> None:
    package = tmp_path / "bad_example"
    package.mkdir()
    (package / "__init__.py").write_text("from contiv_sdk import Plugin\nfrom core.plugin import PluginConfig\n")
    config = tmp_path / "importlinter.ini"
    text = (EXAMPLES / "importlinter.ini").read_text()
    config.write_text(text.replace("    hello_plugin\n    pod_tuning\n", "    bad_example\n"))
    out = lint_imports(config, tmp_path)
    assert out.returncode == 1, out.stdout
    assert "BROKEN" in out.stdout and "bad_example -> core.plugin" in out.stdout


def test_every_public_name_is_documented_and_exists() -> None:
    for module in (contiv_sdk, contiv_sdk.testing):
        assert module.__doc__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
