"""The images install pinned versions: every runtime dependency of contiv-py (the whole
closure, as installed here) has a line in deploy/images/constraints.txt."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[2]


def closure(name: str, seen: set[str]) -> set[str]:
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return seen
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return seen
    seen.add(key)
    for req in dist.requires or []:
        spec, _, marker = req.partition(";")
        if marker and ("extra" in marker or not Marker(marker).evaluate()):
            continue
        closure(re.match(r"[A-Za-z0-9_.-]+", spec.strip()).group(0), seen)  # type: ignore[union-attr]
    return seen


def test_every_runtime_dependency_is_pinned_for_the_images() -> None:
    pinned = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
              for line in (ROOT / "deploy" / "images" / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    needed = closure("contiv-py", set()) - {"contiv-py"}
    assert needed, "contiv-py is not installed (pip install -e .)"
    assert sorted(needed - pinned) == [], "add these to deploy/images/constraints.txt"
