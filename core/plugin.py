"""The plugin contract: a named unit with a validated config, typed dependencies and a lifecycle.

A plugin is constructed by its app's container with its ``config`` (an instance of its
``Config`` model) and the other plugins it needs as keyword arguments, typed by the interface it
uses. The agent (``core.agent``) finds those dependencies by looking at the plugin's attributes,
orders plugins so that dependencies start first, and drives the lifecycle:

* ``init()``: register things (descriptors, handlers, HTTP routes, gRPC services, watches);
  allocate state. Do not start serving yet.
* ``after_init()``: runs once every plugin's ``init`` succeeded: start servers and watches, do
  the first resync.
* ``close()``: release everything; called in reverse start order, also after a failed start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class PluginConfig(BaseModel):
    """Base of every plugin's settings model: unknown keys are an error, never ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)


class Plugin:
    """Base class of every plugin.

    Subclasses set ``name`` (unique in an app; it names the logger, the config section, the
    health entry and the metrics prefix) and ``Config`` (a :class:`PluginConfig` subclass), and
    take their dependencies as keyword arguments typed by interface.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    #: Where the plugin came from: "builtin" or "entry-point:<distribution>"; set by discovery.
    origin: ClassVar[str] = "builtin"

    config: PluginConfig
    log: logging.Logger

    def __init__(self, config: PluginConfig | None = None) -> None:
        if not self.name:
            raise TypeError(f"{type(self).__qualname__} has no plugin name")
        self.config = config if config is not None else self.Config()
        self.log = logging.getLogger(f"contiv.{self.name}")

    async def init(self) -> None:
        """Register descriptors, handlers, routes and services; allocate state."""

    async def after_init(self) -> None:
        """Start serving and watching; called after every plugin's ``init`` succeeded."""

    async def close(self) -> None:
        """Stop and release everything this plugin holds."""

    def dependencies(self) -> Iterator[Plugin]:
        """The plugins this one was given, found in its attributes (lists and dicts included)."""
        for value in vars(self).values():
            yield from _plugins_in(value)

    def __repr__(self) -> str:
        return f"<plugin {self.name}>"


def _plugins_in(value: Any) -> Iterator[Plugin]:
    if isinstance(value, Plugin):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, Plugin):
                yield item
    elif isinstance(value, dict):
        for item in value.values():
            if isinstance(item, Plugin):
                yield item
