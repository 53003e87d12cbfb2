"""Handler plugins called through pluggy, one by one, in the order the app declares them.

Every handler is registered with a :class:`pluggy.PluginManager` that knows the controller's hook
specs, so pluggy validates each hook implementation's name and arguments at registration. The
controller then calls each handler's implementations itself (not ``pm.hook.X()``, which would
call all of them at once) so that it can order them, record each result and stop on errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pluggy

from core.hookspecs import PROJECT
from plugins.controller import hookspecs

HOOKS = ("handles_event", "resync", "update", "revert", "describe_internal_state")


def is_handler(plugin: object) -> bool:
    """True when ``plugin`` implements at least one of the controller's hooks (pluggy-marked)."""
    marker = f"{PROJECT}_impl"
    return any(getattr(getattr(plugin, hook, None), marker, None) is not None for hook in HOOKS)


class HandlerRegistrationError(ValueError):
    """A handler's hook implementations do not match the controller's hook specs."""


class _BoundHook:
    """One handler's implementation of one hook, called with the arguments it declares."""

    __slots__ = ("argnames", "function")

    def __init__(self, function: Callable[..., Any], argnames: Sequence[str]) -> None:
        self.function = function
        self.argnames = tuple(argnames)

    def __call__(self, **kwargs: Any) -> Any:
        return self.function(*[kwargs[name] for name in self.argnames])


class Handler:
    """A handler plugin with its hook implementations resolved."""

    __slots__ = ("_hooks", "name", "plugin")

    def __init__(self, name: str, plugin: object, hooks: dict[str, _BoundHook]) -> None:
        self.name = name
        self.plugin = plugin
        self._hooks = hooks

    def implements(self, hook: str) -> bool:
        return hook in self._hooks

    def handles(self, event: Any) -> bool:
        """Whether the handler wants the event; a handler without ``handles_event`` wants all."""
        hook = self._hooks.get("handles_event")
        return True if hook is None else bool(hook(event=event))

    def call(self, hook: str, **kwargs: Any) -> Any:
        """Call the hook if implemented (returns None otherwise)."""
        bound = self._hooks.get(hook)
        return None if bound is None else bound(**kwargs)


def build_handlers(plugins: Sequence[object]) -> tuple[pluggy.PluginManager, list[Handler]]:
    """Register ``plugins`` (in declared order) and resolve each one's hook implementations."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    names: list[str] = []
    for plugin in plugins:
        name = str(getattr(plugin, "name", "") or type(plugin).__name__)
        if name in names:
            raise HandlerRegistrationError(f"handler {name!r} is declared twice")
        try:
            manager.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise HandlerRegistrationError(f"handler {name!r}: {exc}") from exc
        names.append(name)
    bound: dict[str, dict[str, _BoundHook]] = {name: {} for name in names}
    for hook in HOOKS:
        caller = getattr(manager.hook, hook)
        for impl in caller.get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                raise HandlerRegistrationError(
                    f"handler {impl.plugin_name!r}: {hook} must be a plain hook, not a wrapper"
                )
            bound[impl.plugin_name][hook] = _BoundHook(impl.function, impl.argnames)
    handlers = [Handler(name, manager.get_plugin(name), bound[name]) for name in names]
    for handler in handlers:
        if not any(handler.implements(h) for h in ("resync", "update")):
            raise HandlerRegistrationError(
                f"handler {handler.name!r} implements neither resync nor update"
            )
    return manager, handlers
