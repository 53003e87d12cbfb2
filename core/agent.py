"""The agent: starts plugins in dependency order, stops them in reverse, with timeouts.

Unlike Ligato, a failed start closes every plugin that already started, and a failing
``close`` does not stop the others: all errors are collected and reported together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any

import pluggy

from core import hookspecs
from core.plugin import Plugin

log = logging.getLogger("contiv.agent")


class AgentError(Exception):
    """Start or stop failed; ``errors`` holds (plugin name, error) pairs."""

    def __init__(self, what: str, errors: list[tuple[str, BaseException]]) -> None:
        detail = "; ".join(f"{name}: {err}" for name, err in errors)
        super().__init__(f"{what}: {detail}")
        self.errors = errors


class StartRefusedError(ValueError):
    """A plugin found a reason not to start (``contiv_check_start``)."""


class PluginTimeoutError(TimeoutError):
    def __init__(self, plugin: str, phase: str, timeout_s: float) -> None:
        super().__init__(f"plugin {plugin!r} did not finish {phase} within {timeout_s:g}s")
        self.plugin = plugin
        self.phase = phase


def order_plugins(plugins: Iterable[Plugin]) -> list[Plugin]:
    """Dependencies before dependents, otherwise keeping the given order; names must be unique.

    Dependencies that were not given are added (a plugin cannot start without them).
    """
    ordered: list[Plugin] = []
    placed: set[int] = set()
    visiting: set[int] = set()
    names: dict[str, Plugin] = {}

    def visit(p: Plugin, chain: tuple[str, ...]) -> None:
        if id(p) in placed:
            return
        if id(p) in visiting:
            raise ValueError(f"dependency cycle: {' -> '.join((*chain, p.name))}")
        visiting.add(id(p))
        for dep in p.dependencies():
            visit(dep, (*chain, p.name))
        visiting.discard(id(p))
        other = names.get(p.name)
        if other is not None and other is not p:
            raise ValueError(f"two plugins are named {p.name!r}")
        names[p.name] = p
        placed.add(id(p))
        ordered.append(p)

    for plugin in plugins:
        visit(plugin, ())
    return ordered


def new_plugin_manager(plugins: Iterable[Plugin]) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin, name=plugin.name)
    return pm


class Agent:
    """Runs a set of plugins through their lifecycle."""

    def __init__(
        self,
        plugins: Iterable[Plugin],
        start_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
        pm: pluggy.PluginManager | None = None,
    ) -> None:
        self.plugins = order_plugins(plugins)
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.pm = pm if pm is not None else new_plugin_manager(self.plugins)
        self._initialised: list[Plugin] = []
        self.started = False

    def plugin(self, name: str) -> Plugin:
        for p in self.plugins:
            if p.name == name:
                return p
        raise KeyError(f"no plugin named {name!r}")

    async def _timed(self, plugin: Plugin, phase: str, call: Awaitable[None], timeout_s: float) -> None:
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                await call
        except TimeoutError:
            raise PluginTimeoutError(plugin.name, phase, timeout_s) from None
        log.debug("%s %s took %.1f ms", plugin.name, phase, (time.perf_counter() - t0) * 1e3)

    def start_problems(self) -> list[tuple[str, str]]:
        """What would make the start fail, found without starting (``contiv_check_start``):
        (plugin name, problem) each."""
        problems: list[tuple[str, str]] = []
        for impl in self.pm.hook.contiv_check_start.get_hookimpls():
            name = getattr(impl.plugin, "name", "") or impl.plugin_name
            found: Any = impl.function(plugins=list(self.plugins))  # list[str], as the hook spec says
            problems += [(name, str(problem)) for problem in found or ()]
        return problems

    async def start(self) -> None:
        """``init`` of every plugin, then ``after_init`` of every plugin; on failure, close."""
        problems = self.start_problems()  # nothing started yet: nothing to close
        if problems:
            for name, why in problems:
                log.error("start refused by plugin %s: %s", name, why)
            raise AgentError("agent start refused", [(name, StartRefusedError(why)) for name, why in problems])
        current = self.plugins[0].name if self.plugins else "-"
        try:
            self.pm.hook.contiv_agent_starting(plugins=list(self.plugins))
            for plugin in self.plugins:
                current = plugin.name
                await self._timed(plugin, "init", plugin.init(), self.start_timeout_s)
                self._initialised.append(plugin)
            for plugin in self.plugins:
                current = plugin.name
                await self._timed(plugin, "after_init", plugin.after_init(), self.start_timeout_s)
                self.pm.hook.contiv_plugin_started(plugin=plugin)
        except BaseException as err:
            log.error("start failed in plugin %s: %s", current, err)
            close_errors = await self._close_all()
            if isinstance(err, asyncio.CancelledError):
                raise
            raise AgentError("agent start failed", [(current, err), *close_errors]) from err
        self.started = True
        self.pm.hook.contiv_agent_started(plugins=list(self.plugins))
        log.info("agent started with %d plugins: %s", len(self.plugins),
                 ", ".join(p.name for p in self.plugins))

    async def _close_all(self) -> list[tuple[str, BaseException]]:
        errors: list[tuple[str, BaseException]] = []
        for plugin in reversed(self._initialised):
            try:
                await self._timed(plugin, "close", plugin.close(), self.stop_timeout_s)
            except Exception as err:  # noqa: BLE001 - every plugin gets closed, errors reported
                log.error("closing plugin %s failed: %s", plugin.name, err)
                errors.append((plugin.name, err))
        self._initialised.clear()
        return errors

    async def stop(self) -> None:
        """Close every started plugin in reverse order; raise with all errors at the end."""
        if not self._initialised:
            return
        self.pm.hook.contiv_agent_stopping(plugins=list(self.plugins))
        self.started = False
        errors = await self._close_all()
        if errors:
            raise AgentError("agent stop failed", errors)
        log.info("agent stopped")
