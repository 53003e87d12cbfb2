"""App configuration: one YAML file, a ``plugins:`` list and one validated section per plugin.

Precedence, lowest first: the model defaults, the YAML file, ``CONTIV_<PLUGIN>__<KEY>``
environment variables (``__`` separates nested keys; values are parsed as YAML scalars), then
the app's own overrides (``ETCD_ENDPOINTS``, ``--node-name``, ...). Every problem is collected
and reported with the file, the key path and the reason; nothing is silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.plugin import Plugin, PluginConfig

ENV_PREFIX = "CONTIV_"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    source: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: {self.reason}"


class ConfigError(Exception):
    """The configuration is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {i}" for i in issues))
        self.issues = issues


@dataclass(slots=True)
class AppConfig:
    """The validated result: enabled plugin names in file order and each plugin's config."""

    source: str
    enabled: list[str]
    sections: dict[str, PluginConfig] = field(default_factory=dict)


def env_token(plugin_name: str) -> str:
    """The environment spelling of a plugin name: ``service-label`` -> ``SERVICE_LABEL``."""
    return plugin_name.upper().replace("-", "_")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError([ConfigIssue(str(path), "-", f"cannot read file: {err.strerror}")]) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "-"
        raise ConfigError([ConfigIssue(str(path), where, f"not valid YAML: {err}")]) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(path), "-", "the file must hold a mapping of sections")])
    return data


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[path[-1]] = value


def env_overrides(
    environ: Mapping[str, str], known: Mapping[str, type[Plugin]]
) -> tuple[dict[str, dict[str, Any]], list[ConfigIssue]]:
    """Sections built from ``CONTIV_<PLUGIN>__<KEY>`` variables, and issues for unknown plugins."""
    by_token = {env_token(name): name for name in known}
    out: dict[str, dict[str, Any]] = {}
    issues: list[ConfigIssue] = []
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        token, *path = var[len(ENV_PREFIX):].split("__")
        name = by_token.get(token)
        if name is None:
            issues.append(ConfigIssue(f"environment {var}", token.lower(), "no such plugin"))
            continue
        if not all(path):
            issues.append(ConfigIssue(f"environment {var}", name, "empty key"))
            continue
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        _set_path(out.setdefault(name, {}), [p.lower() for p in path], value)
    return out, issues


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(err: ValidationError, section: str) -> list[tuple[str, str]]:
    out = []
    for e in err.errors():
        path = ".".join([section, *(str(p) for p in e["loc"])])
        reason = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        if e["type"] != "extra_forbidden" and "input" in e and not isinstance(e["input"], dict):
            reason += f" (got {e['input']!r})"
        out.append((path, reason))
    return out


def load_app_config(
    data: Mapping[str, Any],
    source: str,
    known: Mapping[str, type[Plugin]],
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> AppConfig:
    """Validate ``data`` (the YAML mapping) against the known plugins; raise :class:`ConfigError`.

    ``known`` maps every plugin name the app can load (built-in and discovered) to its class.
    """
    issues: list[ConfigIssue] = []
    enabled_raw = data.get("plugins")
    enabled: list[str] = []
    if enabled_raw is None:
        issues.append(ConfigIssue(source, "plugins", "missing: list the plugins to enable"))
    elif not isinstance(enabled_raw, list) or not all(isinstance(n, str) for n in enabled_raw):
        issues.append(ConfigIssue(source, "plugins", "must be a list of plugin names"))
    else:
        for i, name in enumerate(enabled_raw):
            if name not in known:
                issues.append(ConfigIssue(source, f"plugins[{i}]",
                                          f"unknown plugin {name!r} (known: {', '.join(sorted(known))})"))
            elif name in enabled:
                issues.append(ConfigIssue(source, f"plugins[{i}]", f"plugin {name!r} listed twice"))
            else:
                enabled.append(name)
    for key in data:
        if key != "plugins" and key not in known:
            issues.append(ConfigIssue(source, str(key), "unknown key: no plugin has this name"))

    env_sections, env_issues = env_overrides(environ if environ is not None else os.environ, known)
    issues.extend(env_issues)
    sections: dict[str, PluginConfig] = {}
    for name in enabled:
        raw = data.get(name) or {}
        if not isinstance(raw, dict):
            issues.append(ConfigIssue(source, name, "must be a mapping of settings"))
            continue
        raw = _merge(raw, env_sections.get(name, {}))
        if overrides and name in overrides:
            raw = _merge(raw, overrides[name])
        try:
            sections[name] = known[name].Config.model_validate(raw)
        except ValidationError as err:
            for path, reason in _describe(err, name):
                issues.append(ConfigIssue(source, path, reason))
    if issues:
        raise ConfigError(issues)
    return AppConfig(source, enabled, sections)
