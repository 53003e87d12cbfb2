"""Extension points of the framework (pluggy), the documented contract for plugin authors.

Hook implementations are methods of plugin objects marked with :data:`hookimpl`; the agent
registers every enabled plugin with the app's :class:`pluggy.PluginManager`, so a plugin only
has to implement the hooks it cares about. Every spec here is called by :mod:`core.agent`.
(Event handling is not a hook: it is the typed ``plugins.controller.api.EventHandler``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from core.plugin import Plugin

PROJECT = "contiv"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def contiv_agent_starting(plugins: list[Plugin]) -> None:
    """Called once before the first ``init``, with every plugin of the app in start order.

    Lets a plugin find collaborators among the enabled plugins without a constructor
    dependency (which could form a cycle): the controller adopts every enabled plugin that is an
    ``EventHandler`` here, so a third-party plugin becomes a handler just by subclassing it.
    """


@hookspec
def contiv_check_start(plugins: list[Plugin]) -> list[str]:
    """What would make the start of these plugins fail, found without starting anything: each
    implementation returns its problems (messages naming the config key and why), or ``[]``.

    Called by the agent before ``contiv_agent_starting`` (a problem stops the start) and by
    ``--validate-config`` (which prints them and exits 2), so the two refuse the same things.
    """
    return []


@hookspec
def contiv_plugin_started(plugin: Plugin) -> None:
    """Called after ``plugin``'s ``after_init`` succeeded, for every plugin of the app.

    Each implementation sees every plugin start, including its own. Return value ignored.
    """


@hookspec
def contiv_agent_started(plugins: list[Plugin]) -> None:
    """Called once when every plugin of the app has started, with the plugins in start order."""


@hookspec
def contiv_agent_stopping(plugins: list[Plugin]) -> None:
    """Called once before the first ``close``; plugins stop accepting new work here."""
