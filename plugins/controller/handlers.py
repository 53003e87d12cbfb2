"""The controller's event handlers: which plugins are handlers, their names, their order.

A handler is any object that is a :class:`plugins.controller.api.EventHandler`; the controller
calls its typed methods itself, one handler at a time, in order (no hook machinery: the order,
each handler's result and stopping on errors are the controller's business).
"""

from __future__ import annotations

from collections.abc import Sequence

from plugins.controller.api import EventHandler


class HandlerRegistrationError(ValueError):
    """The handlers (or ``controller.handler_order``) do not form a valid set."""


def handler_name(handler: EventHandler) -> str:
    """The handler's plugin name (its class name when it has none)."""
    return str(getattr(handler, "name", "") or type(handler).__name__)


def check_handlers(handlers: Sequence[object]) -> list[EventHandler]:
    """``handlers`` as a list, after checking each is a complete handler with a unique name."""
    checked: list[EventHandler] = []
    names: set[str] = set()
    for handler in handlers:
        if not isinstance(handler, EventHandler):
            raise HandlerRegistrationError(
                f"{handler!r} is not an EventHandler (subclass plugins.controller.api.EventHandler)"
            )
        name = handler_name(handler)
        if name in names:
            raise HandlerRegistrationError(f"handler {name!r} is declared twice")
        kind = type(handler)
        if kind.resync is EventHandler.resync and kind.update is EventHandler.update:
            raise HandlerRegistrationError(f"handler {name!r} implements neither resync nor update")
        names.add(name)
        checked.append(handler)
    return checked


def order_handlers(handlers: Sequence[EventHandler], order: Sequence[str]) -> list[EventHandler]:
    """``handlers`` in ``order`` (plugin names; empty: as given); every handler listed once."""
    checked = check_handlers(handlers)
    if not order:
        return checked
    by_name = {handler_name(h): h for h in checked}
    unknown = [name for name in order if name not in by_name]
    if unknown:
        raise HandlerRegistrationError(
            f"controller.handler_order names {unknown}, which are not registered handlers "
            f"(registered: {sorted(by_name)})"
        )
    if len(set(order)) != len(order):
        raise HandlerRegistrationError(f"controller.handler_order lists a handler twice: {list(order)}")
    missing = sorted(set(by_name) - set(order))
    if missing:
        raise HandlerRegistrationError(
            f"controller.handler_order does not list the registered handlers {missing}"
        )
    return [by_name[name] for name in order]
