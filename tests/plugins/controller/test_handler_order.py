"""The handlers' calling order: ``controller.handler_order`` as an explicit override, and where a
handler declares it goes (``handler_after`` / ``handler_before``)."""

from __future__ import annotations

import pytest

from plugins.controller.api import Event, EventHandler
from plugins.controller.handlers import HandlerRegistrationError, handler_name, order_handlers


def handler(name: str, after: tuple[str, ...] = (), before: tuple[str, ...] = ()) -> EventHandler:
    class Handler(EventHandler):
        handler_after, handler_before = after, before

        def handles_event(self, event: Event) -> bool:
            return True

        def update(self, event: Event, txn: object) -> str | None:  # type: ignore[override]
            return None

    h = Handler()
    h.name = name  # type: ignore[attr-defined]
    return h


BUILTIN = ["nodesync", "ipam", "podmanager", "ipnet", "service", "policy"]


def names(handlers: list[EventHandler]) -> list[str]:
    return [handler_name(h) for h in handlers]


def test_a_handler_that_declares_its_place_needs_no_handler_order_entry() -> None:
    # pod-tuning is started (and adopted) before the built-ins it must follow.
    handlers = [handler("pod-tuning", after=("ipnet",)), *map(handler, BUILTIN)]
    assert names(order_handlers(handlers, BUILTIN)) == [*BUILTIN, "pod-tuning"]
    assert names(order_handlers(handlers, [])) == [*BUILTIN[:4], "pod-tuning", *BUILTIN[4:]]
    early = [*map(handler, BUILTIN), handler("audit", before=("nodesync",))]
    assert names(order_handlers(early, BUILTIN)) == ["audit", *BUILTIN]


def test_handler_order_overrides_and_names_of_plugins_not_enabled_are_ignored() -> None:
    handlers = [*map(handler, BUILTIN[:4]), handler("pod-tuning", after=("ipnet", "service"))]
    assert names(order_handlers(handlers, [*BUILTIN[:4], "pod-tuning"])) == [*BUILTIN[:4], "pod-tuning"]


def test_an_undeclared_handler_missing_from_handler_order_and_contradictions_are_refused() -> None:
    with pytest.raises(HandlerRegistrationError, match=r"does not list the registered handlers \['mine'\]"):
        order_handlers([*map(handler, BUILTIN), handler("mine")], BUILTIN)
    with pytest.raises(HandlerRegistrationError, match="contradict"):
        order_handlers([*map(handler, BUILTIN), handler("x", after=("policy",), before=("ipam",))], BUILTIN)
    with pytest.raises(HandlerRegistrationError, match="contradict"):
        order_handlers([handler("a", after=("b",)), handler("b")], ["a", "b"])
