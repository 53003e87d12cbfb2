"""The lab's dataplanes, by name (``up --dataplane NAME``; see :mod:`apps.lab.dataplane.base`).

A new dataplane is one module here with a class that satisfies
:class:`~apps.lab.dataplane.base.Dataplane`, plus one entry in :data:`DATAPLANES` (``contiv-lab up
--dataplane`` offers its name); nothing else in the lab changes.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.lab.dataplane.base import Dataplane
from apps.lab.dataplane.linux import LinuxDataplane
from apps.lab.dataplane.vpp import VppDataplane
from apps.lab.errors import LabError

__all__ = ["DATAPLANES", "Dataplane", "dataplane_of"]

DATAPLANES: dict[str, Callable[[], Dataplane]] = {
    LinuxDataplane.name: LinuxDataplane,
    VppDataplane.name: VppDataplane,
}


def dataplane_of(name: str) -> Dataplane:
    try:
        return DATAPLANES[name]()
    except KeyError:
        raise LabError(f"unknown dataplane {name!r} (known: {', '.join(sorted(DATAPLANES))})") from None
