"""One way to be an event handler, one controller interface, hook specs that are all called."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import core.agent
from core import hookspecs
from core.plugin import Plugin
from plugins.controller import api
from plugins.controller.api import ControllerAPI, Event, EventHandler, Transaction
from plugins.controller.handlers import HandlerRegistrationError, check_handlers
from plugins.controller.plugin import ControllerPlugin
from plugins.ipam.plugin import IPAMPlugin
from plugins.ipnet.plugin import IPNetPlugin
from plugins.nodesync.plugin import NodeSyncPlugin
from plugins.podmanager.plugin import PodManagerPlugin
from tests.plugins.controller.helpers import CallLog, make_handler

ROOT = Path(__file__).resolve().parents[3]


def test_the_built_in_handlers_are_event_handlers() -> None:
    for plugin in (NodeSyncPlugin, IPAMPlugin, PodManagerPlugin, IPNetPlugin):
        assert issubclass(plugin, EventHandler), plugin


def test_event_handler_has_exactly_the_five_methods() -> None:
    methods = {name for name, _ in inspect.getmembers(EventHandler, inspect.isfunction)}
    assert methods == {"handles_event", "resync", "update", "revert", "describe_internal_state"}
    assert EventHandler.__abstractmethods__ == frozenset({"handles_event"})


def test_no_other_way_to_become_a_handler() -> None:
    """Neither a constructor list nor a registration call: adoption is the only path."""
    assert "handlers" not in inspect.signature(ControllerPlugin).parameters
    assert not hasattr(ControllerPlugin, "register_handler")
    assert not (ROOT / "plugins" / "controller" / "hookspecs.py").exists()


def test_one_controller_interface() -> None:
    """The four local Protocols of the controller and the two of the service label are gone."""
    local = {"HandlerRegistry", "HandlerRegistrar", "ControllerHandle", "EventSink", "NodeLabel",
             "NodeLabelProvider"}
    for path in (ROOT / "plugins").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        assert not defined & local, f"{path} defines {defined & local}"
    assert "ControllerAPI" in vars(api) and isinstance(ControllerAPI, type)


def test_every_core_hook_spec_is_called_by_the_agent() -> None:
    specs = {
        name for name, fn in vars(hookspecs).items()
        if callable(fn) and getattr(fn, f"{hookspecs.PROJECT}_spec", None) is not None
    }
    tree = ast.parse(Path(core.agent.__file__).read_text())
    called = {
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
        and node.value.attr == "hook"
    }
    assert specs and specs <= called, f"hook specs nobody calls: {sorted(specs - called)}"


def test_only_complete_event_handlers_are_accepted() -> None:
    class Hooks(Plugin):
        """Methods with the right names but not an EventHandler (the old hook style)."""

        name = "hooks"

        def handles_event(self, event: Event) -> bool:
            return True

        def update(self, event: Event, txn: Transaction) -> str | None:
            return None

    with pytest.raises(HandlerRegistrationError, match="is not an EventHandler"):
        check_handlers([Hooks()])

    class NoWork(Plugin, EventHandler):
        name = "nowork"

        def handles_event(self, event: Event) -> bool:
            return True

    with pytest.raises(HandlerRegistrationError, match="'nowork' implements neither resync nor update"):
        check_handlers([NoWork()])

    class Incomplete(Plugin, EventHandler):
        name = "incomplete"

        def update(self, event: Event, txn: Transaction) -> str | None:
            return None

    with pytest.raises(TypeError, match="handles_event"):
        Incomplete()  # type: ignore[abstract]
    calls: CallLog = []
    with pytest.raises(HandlerRegistrationError, match="'a' is declared twice"):
        check_handlers([make_handler("a", calls), make_handler("a", calls)])
