"""What a lab runtime is: the way the lab runs its apps (KSR, one agent per node).

The lab asks a :class:`Runtime` to check that it can run, to start an app inside a network
namespace (returning a PID that stands for it in the lab state: ``kill-agent``, ``restart-agent``
and ``down`` signal that PID), and, at ``down``, to remove whatever it keeps outside the lab's
namespaces and directory. Implementations: :mod:`apps.lab.runtime.process` (the source tree) and
:mod:`apps.lab.runtime.podman` (the project's images); :mod:`apps.lab.runtime` picks one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Protocol

from apps.lab.state import LabState

#: The apps a runtime runs: ``contiv-agent`` (apps.vswitch) and ``contiv-ksr``.
App = Literal["agent", "ksr"]


class Runtime(Protocol):
    """Runs the lab's apps. Every method gets the lab's state; a runtime keeps none of its own."""

    name: str

    def check(self, state: LabState) -> None:
        """Fail early (:class:`~apps.lab.errors.LabError`) when this lab cannot run here."""

    def start(self, state: LabState, app: App, config: Path, netns_name: str, log: Path,
              env: Mapping[str, str], name: str) -> int:
        """Start ``app`` with config file ``config`` in namespace ``netns_name``, output to ``log``;
        ``name`` is unique in the lab ("ksr", "agent-node1"). Returns the PID that stands for it."""
        ...

    def remove_all(self, state: LabState) -> list[str]:
        """At ``down``: remove what this runtime made outside the lab's PIDs, namespaces and
        directory (containers, say); returns what went. Works after a crash, from a bare state."""
        ...
