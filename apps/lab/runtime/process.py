"""The default runtime: the apps run from the source tree, as processes inside the namespaces."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from apps.lab import netns
from apps.lab.runtime.base import App
from apps.lab.state import LabState

MODULES: dict[App, str] = {"agent": "apps.vswitch.main", "ksr": "apps.ksr.main"}


class ProcessRuntime:
    """``python -m apps.vswitch.main`` / ``apps.ksr.main`` under ``ip netns exec``."""

    name = "process"

    def check(self, state: LabState) -> None:
        return None

    def start(self, state: LabState, app: App, config: Path, netns_name: str, log: Path,
              env: Mapping[str, str], name: str) -> int:
        return netns.spawn(netns.python_module(MODULES[app], "--config", str(config)), netns_name, log, dict(env))

    def remove_all(self, state: LabState) -> list[str]:
        return []  # the processes die with the PIDs and namespaces the lab removes
