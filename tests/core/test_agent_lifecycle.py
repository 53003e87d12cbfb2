"""The agent's lifecycle: dependency order, reverse close, timeouts, failed start, failing close."""

from __future__ import annotations

import asyncio

import pytest

from core.agent import Agent, AgentError, PluginTimeoutError, order_plugins
from core.hookspecs import hookimpl
from core.plugin import Plugin


class Recorder(Plugin):
    name = "recorder"

    def __init__(self, name: str, log: list[str], *, deps: list[Plugin] | None = None,
                 fail_in: str = "", hang_in: str = "") -> None:
        self.name = name  # type: ignore[misc]
        super().__init__()
        self.events = log
        self.deps = deps or []
        self.fail_in = fail_in
        self.hang_in = hang_in

    async def _step(self, phase: str) -> None:
        self.events.append(f"{phase}:{self.name}")
        if self.hang_in == phase:
            await asyncio.sleep(3600)
        if self.fail_in == phase:
            raise RuntimeError(f"{self.name} broke in {phase}")

    async def init(self) -> None:
        await self._step("init")

    async def after_init(self) -> None:
        await self._step("after_init")

    async def close(self) -> None:
        await self._step("close")


def test_dependencies_start_first_and_order_is_otherwise_kept() -> None:
    log: list[str] = []
    a = Recorder("a", log)
    b = Recorder("b", log, deps=[a])
    c = Recorder("c", log)
    d = Recorder("d", log, deps=[b, c])
    assert [p.name for p in order_plugins([d, c, a])] == ["a", "b", "c", "d"]


def test_duplicate_names_and_cycles_are_rejected() -> None:
    log: list[str] = []
    with pytest.raises(ValueError, match="two plugins are named 'a'"):
        order_plugins([Recorder("a", log), Recorder("a", log)])
    x = Recorder("x", log)
    y = Recorder("y", log, deps=[x])
    x.deps = [y]
    with pytest.raises(ValueError, match="dependency cycle"):
        order_plugins([x])


async def test_start_runs_every_init_then_every_after_init_and_stop_reverses() -> None:
    log: list[str] = []
    a = Recorder("a", log)
    b = Recorder("b", log, deps=[a])
    agent = Agent([b])
    await agent.start()
    assert log == ["init:a", "init:b", "after_init:a", "after_init:b"]
    log.clear()
    await agent.stop()
    assert log == ["close:b", "close:a"]


async def test_failed_start_closes_what_started() -> None:
    log: list[str] = []
    a = Recorder("a", log)
    b = Recorder("b", log, deps=[a])
    c = Recorder("c", log, deps=[b], fail_in="after_init")
    agent = Agent([c])
    with pytest.raises(AgentError, match="c: c broke in after_init") as info:
        await agent.start()
    assert info.value.errors[0][0] == "c"
    assert log[-3:] == ["close:c", "close:b", "close:a"]


async def test_failed_init_closes_only_initialised_plugins() -> None:
    log: list[str] = []
    a = Recorder("a", log)
    b = Recorder("b", log, deps=[a], fail_in="init")
    with pytest.raises(AgentError):
        await Agent([b]).start()
    assert log == ["init:a", "init:b", "close:a"]


async def test_start_timeout_names_the_plugin() -> None:
    log: list[str] = []
    slow = Recorder("slow", log, hang_in="init")
    with pytest.raises(AgentError) as info:
        await Agent([slow], start_timeout_s=0.2).start()
    err = info.value.errors[0][1]
    assert isinstance(err, PluginTimeoutError) and err.plugin == "slow"
    assert "plugin 'slow' did not finish init within 0.2s" in str(info.value)


async def test_failing_and_hanging_close_do_not_stop_the_others() -> None:
    log: list[str] = []
    a = Recorder("a", log)
    b = Recorder("b", log, deps=[a], fail_in="close")
    c = Recorder("c", log, deps=[b], hang_in="close")
    agent = Agent([c], stop_timeout_s=0.2)
    await agent.start()
    log.clear()
    with pytest.raises(AgentError) as info:
        await agent.stop()
    assert log == ["close:c", "close:b", "close:a"]
    assert [name for name, _ in info.value.errors] == ["c", "b"]


async def test_lifecycle_hooks_reach_plugins() -> None:
    seen: list[str] = []

    class Watcher(Plugin):
        name = "watcher"

        @hookimpl
        def contiv_plugin_started(self, plugin: Plugin) -> None:
            seen.append(plugin.name)

        @hookimpl
        def contiv_agent_started(self, plugins: list[Plugin]) -> None:
            seen.append("all:" + ",".join(p.name for p in plugins))

    log: list[str] = []
    agent = Agent([Recorder("a", log), Watcher()])
    await agent.start()
    await agent.stop()
    assert seen == ["a", "watcher", "all:a,watcher"]
