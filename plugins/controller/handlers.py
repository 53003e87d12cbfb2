"""The controller's event handlers: which plugins are handlers, their names, their order.

A handler is any object that is a :class:`plugins.controller.api.EventHandler`; the controller
calls its typed methods itself, one handler at a time, in order (no hook machinery: the order,
each handler's result and stopping on errors are the controller's business).
"""

from __future__ import annotations

import itertools
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
    """``handlers`` in calling order.

    ``order`` (``controller.handler_order``; plugin names) is an explicit override: the handlers
    it lists come in that order. A handler it does not list goes where it declares
    (``EventHandler.handler_after`` / ``handler_before``: after ipnet, ...), and so does every
    handler when ``order`` is empty; otherwise the start order decides. A handler ``order``
    leaves out that declares nothing, or declarations that contradict each other or ``order``,
    are refused with a message saying which.
    """
    checked = check_handlers(handlers)
    by_name = {handler_name(h): h for h in checked}
    unknown = [name for name in order if name not in by_name]
    if unknown:
        raise HandlerRegistrationError(
            f"controller.handler_order names {unknown}, which are not registered handlers "
            f"(registered: {sorted(by_name)})"
        )
    if len(set(order)) != len(order):
        raise HandlerRegistrationError(f"controller.handler_order lists a handler twice: {list(order)}")
    if order:
        undeclared = sorted(name for name, h in by_name.items()
                            if name not in order and not (h.handler_after or h.handler_before))
        if undeclared:
            raise HandlerRegistrationError(
                f"controller.handler_order does not list the registered handlers {undeclared} "
                f"(list them, or let each declare handler_after / handler_before)")
    # Before whom each handler must come: the explicit order's neighbours, then declarations
    # (a name that is not a registered handler is ignored: that plugin is not enabled).
    edges: dict[str, set[str]] = {name: set() for name in by_name}
    for first, second in itertools.pairwise(order):
        edges[first].add(second)
    for name, handler in by_name.items():
        for other in handler.handler_after:
            if other in by_name:
                edges[other].add(name)
        for other in handler.handler_before:
            if other in by_name:
                edges[name].add(other)
    # Ties: the explicit order first, then the start order.
    rank = {name: (0, order.index(name)) if name in order else (1, i) for i, name in enumerate(by_name)}
    return [by_name[name] for name in _sorted(edges, rank)]


def _sorted(edges: dict[str, set[str]], rank: dict[str, tuple[int, int]]) -> list[str]:
    """Names so that every edge ``a -> b`` has a first; among the free ones the lowest rank."""
    waiting = {name: 0 for name in edges}
    for targets in edges.values():
        for target in targets:
            waiting[target] += 1
    ready = sorted((rank[n], n) for n, count in waiting.items() if count == 0)
    out: list[str] = []
    while ready:
        _, name = ready.pop(0)
        out.append(name)
        for target in edges[name]:
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append((rank[target], target))
                ready.sort()
    if len(out) != len(edges):
        stuck = sorted(n for n in edges if n not in out)
        raise HandlerRegistrationError(
            f"the handlers {stuck} cannot be ordered: controller.handler_order and their "
            f"handler_after / handler_before contradict each other")
    return out
