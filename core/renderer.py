"""Picking a feature's dataplane renderer, the same way for every feature (ipnet, service,
policy): each feature's ``renderer/__init__.py`` names the module of each dataplane's renderer,
and an unknown or unloadable one stops the agent's start with a message naming the feature and
the dataplane (never a feature silently left unconfigured)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType


class RendererUnavailable(ValueError):
    """A feature has no renderer for the configured dataplane, or it cannot be loaded."""


def renderer_module(feature: str, choice: str, modules: Mapping[str, str], setting: str = "dataplane") -> ModuleType:
    """The module of ``feature``'s renderer for ``choice`` (``modules``: choice -> module), the
    value of the config key ``setting`` (the dataplane, or a feature's own renderer setting)."""
    name = modules.get(choice)
    if name is None:
        known = ", ".join(sorted(modules))
        raise RendererUnavailable(f"{feature}: no renderer for {setting} {choice!r} (known: {known})")
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise RendererUnavailable(
            f"{feature}: the renderer for {setting} {choice!r} ({name}) cannot be loaded: {exc}") from exc
