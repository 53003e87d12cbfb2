"""The lab's runtimes: how KSR and the agents run (see :mod:`apps.lab.runtime.base`).

A new runtime is one module here with a class that satisfies :class:`~apps.lab.runtime.base.Runtime`,
plus one entry in :data:`RUNTIMES` and in :func:`runtime_name`; nothing else in the lab changes.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.lab.runtime.base import App, Runtime
from apps.lab.runtime.podman import PodmanRuntime
from apps.lab.runtime.process import ProcessRuntime
from apps.lab.state import LabState

__all__ = ["RUNTIMES", "App", "Runtime", "runtime_name", "runtime_of"]

RUNTIMES: dict[str, Callable[[], Runtime]] = {
    ProcessRuntime.name: ProcessRuntime,
    PodmanRuntime.name: PodmanRuntime,
}


def runtime_name(state: LabState) -> str:
    """Which runtime the lab uses: ``podman`` when it was brought up with ``--image``."""
    return PodmanRuntime.name if state.image else ProcessRuntime.name


def runtime_of(state: LabState) -> Runtime:
    return RUNTIMES[runtime_name(state)]()
