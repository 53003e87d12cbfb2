"""contiv-stn's command line: --version, --validate-config, bad config, subcommand usage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "apps.stn.main", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def test_version_and_default_config() -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("contiv-stn ")
    valid = run("--validate-config")
    assert valid.returncode == 0 and "configuration OK (5 plugins enabled)" in valid.stdout


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "stn.yaml"
    config.write_text("plugins: [stn]\nstn:\n  watchdog:\n    grace_s: -1\n    bogus: 1\n  namespace: a/b\n")
    result = run("--config", str(config), "--validate-config")
    assert result.returncode == 2
    for key in ("stn.watchdog.grace_s", "stn.watchdog.bogus", "stn.namespace"):
        assert key in result.stderr, result.stderr


def test_subcommand_without_daemon_fails_clearly(tmp_path: Path) -> None:
    result = run("info", "eth0", "--socket", str(tmp_path / "none.sock"))
    assert result.returncode == 1
    assert "contiv-stn is not reachable on" in result.stderr
    usage = run("steal")
    assert usage.returncode == 2 and "IFNAME" in usage.stderr
