"""Enabling a third-party handler takes one line (issue 23, item 13): the default agent config
with ``pod-tuning`` added to ``plugins:`` passes ``--validate-config`` *and* would start; and
``--validate-config`` refuses what the start refuses (a handler nobody can place)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apps.vswitch.main import SPEC
from core.app import build_plugins, load_config, make_agent, run_app
from core.plugin import Plugin
from plugins.controller.api import Event, EventHandler
from plugins.controller.handlers import handler_name, order_handlers
from plugins.controller.plugin import ControllerPlugin
from tests.examples.test_plugins_guide import EXAMPLE, REPO, env_with, site  # noqa: F401 - site: the fixture

DEFAULT = REPO / "apps" / "vswitch" / "default.yaml"


def default_plus(tmp_path: Path, *names: str) -> Path:
    config = yaml.safe_load(DEFAULT.read_text())
    config["plugins"] += list(names)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_default_config_plus_one_line_validates_and_would_start(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    path = default_plus(tmp_path, "pod-tuning")
    out = subprocess.run([sys.executable, "-m", "apps.vswitch.main", "--config", str(path), "--validate-config"],
                         env=env_with(site), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "configuration OK" in out.stdout, out.stderr
    # What the start does with these plugins (no I/O: construction and the handler order).
    monkeypatch.syspath_prepend(str(site))
    cfg, third = load_config(SPEC, path, {}, None)
    plugins = build_plugins(SPEC, cfg, third)
    assert make_agent(SPEC, plugins).start_problems() == []
    controller = next(p for p in plugins if isinstance(p, ControllerPlugin))
    handlers = [p for p in plugins if isinstance(p, EventHandler)]
    order = [handler_name(h) for h in order_handlers(handlers, controller.config.handler_order)]
    assert order[order.index("ipnet") + 1:].count("pod-tuning") == 1


class Unplaced(Plugin, EventHandler):
    """A third-party handler that neither declares its place nor is in handler_order."""

    name = "unplaced"

    def handles_event(self, event: Event) -> bool:
        return False

    def update(self, event: Event, txn: object) -> str | None:  # type: ignore[override]
        return None


def test_validate_config_refuses_what_the_start_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = default_plus(tmp_path)
    cfg, third = load_config(SPEC, path, {}, None)
    plugins = [*build_plugins(SPEC, cfg, third), Unplaced()]
    problems = make_agent(SPEC, plugins).start_problems()
    assert problems == [("controller", "controller.handler_order does not list the registered handlers ['unplaced'] "
                                       "(list them, or let each declare handler_after / handler_before)")]
    # The same through the CLI: a bad handler_order is refused by --validate-config (exit 2).
    config = yaml.safe_load(path.read_text())
    config["controller"]["handler_order"] = ["ipam", "nodesync"]  # leaves out handlers, names no place
    path.write_text(yaml.safe_dump(config))
    assert run_app(SPEC, ["--config", str(path), "--validate-config"]) == 2
    assert "does not list the registered handlers" in capsys.readouterr().err
