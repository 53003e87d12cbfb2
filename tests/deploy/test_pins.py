"""The images install pinned versions: every runtime dependency of contiv-py, the whole closure of
what the images install, has a line in deploy/images/constraints.txt.

The closure is walked from setup.cfg's install_requires through the requirements of each
dependency *at its pinned version*, never through whatever versions this interpreter holds (an
older python-dateutil here once required six, which the images never install). The metadata of a
pinned version is read from the environment, so the environment must hold the pins:
`make test` installs them into its .venv (`pip install -c deploy/images/constraints.txt`)."""

from __future__ import annotations

import configparser
import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    lines = (ROOT / "deploy" / "images" / "constraints.txt").read_text().splitlines()
    return {canonical(name): version for name, _, version
            in (line.strip().partition("==") for line in lines if "==" in line and not line.startswith("#"))}


def install_requires() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return [line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip()]


def runtime_requirements(requires: list[str]) -> list[str]:
    """The names among `requires` that a plain install (no extras) pulls in on this platform."""
    names = []
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and ("extra" in str(req.marker) or not Marker(str(req.marker)).evaluate()):
            continue
        names.append(req.name)
    return names


def image_closure(pinned: dict[str, str]) -> tuple[set[str], list[str]]:
    """(every name the images install, the names whose pinned metadata this environment lacks)."""
    seen: set[str] = set()
    unreadable: list[str] = []
    todo = runtime_requirements(install_requires())
    while todo:
        key = canonical(todo.pop())
        if key in seen:
            continue
        seen.add(key)
        if key not in pinned:
            continue  # reported as unpinned; what it pulls in is unknown until it is pinned
        try:
            dist = distribution(key)
        except PackageNotFoundError:
            unreadable.append(f"{key} (not installed)")
            continue
        if dist.version != pinned[key]:
            unreadable.append(f"{key} (installed {dist.version}, the images install {pinned[key]})")
            continue
        todo.extend(runtime_requirements(dist.requires or []))
    return seen, unreadable


def test_every_runtime_dependency_is_pinned_for_the_images() -> None:
    pinned = pins()
    needed, unreadable = image_closure(pinned)
    assert unreadable == [], ("this environment does not hold the images' versions, so their requirements "
                              "cannot be read: run the tests through `make test` (its .venv installs the pins)")
    assert "pydantic-core" in needed and "pip" not in needed  # walked past the direct requirements
    assert sorted(needed - pinned.keys()) == [], "add these to deploy/images/constraints.txt"
