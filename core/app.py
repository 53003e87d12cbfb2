"""The command line every app shares, and assembling an app's plugins from its container.

``--config FILE``, ``--validate-config`` (exit 0, or 2 printing every error), ``--version``,
``--list-plugins``, plus each app's own overrides (``--node-name`` for the agent, ...).
``ETCD_ENDPOINTS`` (comma-separated ``host:port``) selects the etcd backend for every app.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import signal
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from core.agent import Agent, AgentError
from core.config import AppConfig, ConfigError, ConfigIssue, load_app_config, read_yaml
from core.di import EnabledConfigs, NotEnabledError, builtin_plugins
from core.discovery import discover_plugins
from core.logs import setup_logging
from core.plugin import Plugin

log = logging.getLogger("contiv.app")


def package_version() -> str:
    try:
        return version("contiv-py")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@dataclass(frozen=True, slots=True)
class CLIOverride:
    """A command-line flag and/or environment variable that sets one plugin config key."""

    plugin: str
    key: str
    flag: str | None = None
    env: str | None = None
    help: str = ""
    #: Split a comma-separated value into a list.
    split: bool = False
    #: Extra keys set to fixed values when this override is used.
    implies: Mapping[str, Any] = field(default_factory=dict)


ETCD_OVERRIDE = CLIOverride(
    "kvdb", "endpoints", env="ETCD_ENDPOINTS", split=True, implies={"backend": "etcd"},
    help="etcd endpoints, comma-separated host:port (env ETCD_ENDPOINTS)",
)


@dataclass(frozen=True, slots=True)
class AppSpec:
    """What an app is: its name, its container of built-in plugins and its default YAML."""

    name: str
    container: type[containers.DeclarativeContainer]
    default_config: Path
    description: str = ""
    cli_overrides: Sequence[CLIOverride] = ()
    start_timeout_s: float = 15.0
    stop_timeout_s: float = 5.0

    @property
    def overrides(self) -> list[CLIOverride]:
        return [ETCD_OVERRIDE, *self.cli_overrides]


def collect_overrides(
    spec: AppSpec, args: argparse.Namespace | None, environ: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ov in spec.overrides:
        value: Any = None
        if ov.env and environ.get(ov.env):
            value = environ[ov.env]
        if ov.flag and args is not None:
            flag_value = getattr(args, ov.flag.lstrip("-").replace("-", "_"), None)
            if flag_value is not None:
                value = flag_value
        if value is None:
            continue
        if ov.split and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        section = out.setdefault(ov.plugin, {})
        section[ov.key] = value
        section.update(ov.implies)
    return out


def known_plugins(spec: AppSpec) -> tuple[dict[str, type[Plugin]], dict[str, type[Plugin]], list[ConfigIssue]]:
    """(all known plugin classes by name, the third-party ones, discovery issues)."""
    builtins = {name: cls for name, (_, cls) in builtin_plugins(spec.container).items()}
    third, failures = discover_plugins()
    issues = [ConfigIssue(f"entry point {f.entry_point}", f.entry_point, f.reason) for f in failures]
    third = {n: c for n, c in third.items() if n not in builtins}
    return {**builtins, **third}, third, issues


def load_config(
    spec: AppSpec,
    config: Path | Mapping[str, Any] | None,
    environ: Mapping[str, str] | None = None,
    args: argparse.Namespace | None = None,
) -> tuple[AppConfig, dict[str, type[Plugin]]]:
    environ = os.environ if environ is None else environ
    known, third, discovery_issues = known_plugins(spec)
    if config is None or isinstance(config, Path):
        path = config or spec.default_config
        data, source = read_yaml(path), str(path)
    else:
        data, source = dict(config), "<config>"
    try:
        cfg = load_app_config(data, source, known, environ, collect_overrides(spec, args, environ))
    except ConfigError as err:
        broken = {i.key for i in discovery_issues}
        relevant = [i for i in discovery_issues if i.key in (data.get("plugins") or [])]
        issues = [i for i in err.issues if not any(b in i.reason for b in broken)] + relevant
        raise ConfigError(issues or err.issues) from None
    return cfg, third


def _resolve_dependency(cls: type[Plugin], param: inspect.Parameter, hint: Any,
                        instances: Sequence[Plugin]) -> Any:
    candidates: list[Any] = [hint]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        candidates = [a for a in typing.get_args(hint) if a is not type(None)]
    for plugin in instances:
        for cand in candidates:
            if isinstance(cand, type) and not getattr(cand, "_is_protocol", False) and isinstance(plugin, cand):
                return plugin
    wanted = param.name.replace("_", "-")
    for plugin in instances:
        if plugin.name == wanted:
            return plugin
    if param.default is not inspect.Parameter.empty:
        return param.default
    raise NotEnabledError(
        f"plugin {cls.name!r} needs {param.name!r} ({hint}), which no enabled plugin provides"
    )


def instantiate_third_party(cls: type[Plugin], config: Any, instances: Sequence[Plugin]) -> Plugin:
    """Build an entry-point plugin, giving each constructor argument an enabled plugin by type."""
    hints = typing.get_type_hints(cls.__init__)
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.name == "config" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        kwargs[param.name] = _resolve_dependency(cls, param, hints.get(param.name, Any), instances)
    return cls(config, **kwargs)


def build_plugins(spec: AppSpec, cfg: AppConfig, third: Mapping[str, type[Plugin]],
                  container: containers.DeclarativeContainer | None = None) -> list[Plugin]:
    """Instantiate the enabled plugins (built-ins from the container, then third-party ones)."""
    container = container if container is not None else spec.container()
    container.configs.override(providers.Object(EnabledConfigs(cfg.sections)))
    attrs = builtin_plugins(spec.container)
    instances: list[Plugin] = []
    try:
        for name in cfg.enabled:
            if name in attrs:
                instances.append(getattr(container, attrs[name][0])())
        for name in cfg.enabled:
            if name in third:
                instances.append(instantiate_third_party(third[name], cfg.sections[name], instances))
    except NotEnabledError as err:
        raise ConfigError([ConfigIssue(cfg.source, "plugins", str(err))]) from None
    return instances


def make_agent(spec: AppSpec, plugins: list[Plugin]) -> Agent:
    return Agent(plugins, spec.start_timeout_s, spec.stop_timeout_s, pm=None)


async def _serve(spec: AppSpec, plugins: list[Plugin]) -> int:
    agent = make_agent(spec, plugins)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agent.start()
    except AgentError as err:
        log.error("%s", err)
        return 1
    await stop.wait()
    log.info("signal received, stopping")
    try:
        await agent.stop()
    except AgentError as err:
        log.error("%s", err)
        return 1
    return 0


def _parser(spec: AppSpec) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=spec.name, description=spec.description)
    parser.add_argument("--config", type=Path, help=f"app YAML (default {spec.default_config})")
    parser.add_argument("--validate-config", action="store_true",
                        help="check the configuration, print every error, exit 0 or 2")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--list-plugins", action="store_true",
                        help="list every known plugin, whether enabled, and where it came from")
    for ov in spec.cli_overrides:
        if ov.flag:
            parser.add_argument(ov.flag, help=ov.help)
    return parser


def run_app(spec: AppSpec, argv: Sequence[str] | None = None) -> int:
    """The ``main`` of every app; returns the exit code."""
    args = _parser(spec).parse_args(argv)
    if args.version:
        print(f"{spec.name} {package_version()}")
        return 0
    setup_logging()
    try:
        cfg, third = load_config(spec, args.config, os.environ, args)
    except ConfigError as err:
        if args.list_plugins:
            known, _, _ = known_plugins(spec)
            _print_plugins(known, None)
            return 0
        for issue in err.issues:
            print(f"config error: {issue}", file=sys.stderr)
        return 2
    if args.list_plugins:
        known, _, _ = known_plugins(spec)
        _print_plugins(known, cfg)
        return 0
    try:
        plugins = build_plugins(spec, cfg, third)
    except ConfigError as err:
        for issue in err.issues:
            print(f"config error: {issue}", file=sys.stderr)
        return 2
    if args.validate_config:
        problems = make_agent(spec, plugins).start_problems()  # what the start would refuse
        for name, problem in problems:
            print(f"config error: {cfg.source}: {name}: {problem}", file=sys.stderr)
        if problems:
            return 2
        print(f"{cfg.source}: configuration OK ({len(cfg.enabled)} plugins enabled)")
        return 0
    return asyncio.run(_serve(spec, plugins))


def _print_plugins(known: Mapping[str, type[Plugin]], cfg: AppConfig | None) -> None:
    width = max((len(n) for n in known), default=10)
    for name in sorted(known):
        state = "?" if cfg is None else ("enabled" if name in cfg.enabled else "disabled")
        print(f"{name:<{width}}  {state:<8}  {known[name].origin}")
