"""Handlers are adopted by the controller when the agent starts: every enabled plugin that is an
``EventHandler``; no registration call, no constructor dependency, order from ``handler_order``."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from core.agent import Agent, AgentError, StartRefusedError
from core.plugin import Plugin
from core.servicelabel import ServiceLabelConfig, ServiceLabelPlugin
from plugins.controller.api import Event, EventHandler, Transaction
from plugins.controller.config import ControllerConfig
from plugins.controller.plugin import ControllerPlugin
from plugins.kvscheduler.plugin import KVSchedulerPlugin


class Poke(Event):
    name = "Poke"
    blocking = True


class Seen(BaseModel):
    by: str


class Recording(Plugin, EventHandler):
    """A plugin that only subclasses EventHandler, as a third-party handler would."""

    name = "recording"

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name  # type: ignore[misc]
        super().__init__()
        self.calls = calls

    def handles_event(self, event: Event) -> bool:
        return isinstance(event, Poke)

    def update(self, event: Event, txn: Transaction) -> str:
        self.calls.append(self.name)
        return f"{self.name} saw it"


class NotAHandler(Plugin):
    """Has methods named like the handler's (the old pluggy style) but is no EventHandler."""

    name = "bystander"

    def handles_event(self, event: Event) -> bool:
        raise AssertionError("a plugin that is not an EventHandler was called")

    def update(self, event: Event, txn: Transaction) -> str:
        raise AssertionError("a plugin that is not an EventHandler was called")


def make(order: list[str], calls: list[str]) -> tuple[Agent, ControllerPlugin]:
    scheduler = KVSchedulerPlugin()
    controller = ControllerPlugin(
        ControllerConfig.model_validate({"handler_order": order, "dbwatcher": {"enabled": False}}),
        scheduler=scheduler.scheduler, service_label=ServiceLabelPlugin(ServiceLabelConfig(label="n1")),
    )
    plugins: list[Plugin] = [scheduler, controller, Recording("second", calls), Recording("first", calls),
                             NotAHandler()]
    return Agent(plugins), controller


async def test_handlers_are_adopted_in_declared_order() -> None:
    calls: list[str] = []
    agent, controller = make(["first", "second"], calls)
    await agent.start()
    try:
        assert [h.name for h in controller.handlers] == ["second", "first"]  # adoption order
        assert controller.request_resync() == "full"  # no dbwatcher: the first resync is ours
        event = Poke()
        await controller.push_event(event)
        await event.wait()
        assert calls == ["first", "second"]  # handler_order wins
    finally:
        await agent.stop()


async def test_an_order_naming_a_missing_handler_fails_start() -> None:
    agent, _ = make(["first", "second", "ghost"], [])
    with pytest.raises(AgentError) as info:
        await agent.start()
    name, error = info.value.errors[0]  # refused before any plugin started (contiv_check_start)
    assert name == "controller" and isinstance(error, StartRefusedError)
    assert "['ghost'], which are not registered handlers" in str(error)
