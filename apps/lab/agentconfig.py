"""``contiv-lab up --agent-config FILE``: a YAML file merged over every node's agent config.

The merge is recursive for mappings; any other value (a list such as ``plugins:``, a number, a
string) replaces the lab's. So a file that enables a third-party plugin lists the whole
``plugins:`` and ``controller.handler_order`` it wants, and may add that plugin's section.
The overlay is kept in the lab's state: nodes added later and restarted agents get it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class AgentConfigError(ValueError):
    """The overlay file cannot be used (the message names the file and the reason)."""


def load_overlay(path: Path) -> dict[str, Any]:
    """Read ``path``: a YAML mapping (an empty file is an empty overlay)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise AgentConfigError(f"--agent-config {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AgentConfigError(f"--agent-config {path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AgentConfigError(
            f"--agent-config {path}: must be a mapping of agent config keys, not {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` merged over it (mappings recursively, everything else replaced)."""
    result = dict(base)
    for key, value in overlay.items():
        old = result.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            result[key] = merge(old, value)
        else:
            result[key] = value
    return result
