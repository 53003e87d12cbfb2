"""Third-party plugins: classes registered under the entry-point group ``contiv.plugins``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

from core.plugin import Plugin

GROUP = "contiv.plugins"
log = logging.getLogger("contiv.discovery")


@dataclass(frozen=True, slots=True)
class DiscoveryFailure:
    entry_point: str
    reason: str


def discover_plugins() -> tuple[dict[str, type[Plugin]], list[DiscoveryFailure]]:
    """Load every ``contiv.plugins`` entry point; return plugin classes by name and failures."""
    found: dict[str, type[Plugin]] = {}
    failures: list[DiscoveryFailure] = []
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
        except Exception as err:  # noqa: BLE001 - a broken third-party package must not stop the app
            failures.append(DiscoveryFailure(ep.name, f"cannot import {ep.value}: {err}"))
            continue
        if not (isinstance(obj, type) and issubclass(obj, Plugin)):
            failures.append(DiscoveryFailure(ep.name, f"{ep.value} is not a Plugin subclass"))
            continue
        if obj.name != ep.name:
            failures.append(DiscoveryFailure(ep.name, f"entry point name differs from plugin name {obj.name!r}"))
            continue
        dist = ep.dist.name if ep.dist is not None else "unknown"
        obj.origin = f"entry-point:{dist}"
        found[obj.name] = obj
    return found, failures
