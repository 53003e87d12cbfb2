"""Automatic garbage collection paused while a transaction's task runs, never while it waits.

A large transaction allocates many small objects; the generational collector would otherwise
rescan young objects over and over while the plan is computed. The switch is process-wide, so
the pause must not outlive the stretch in which the transaction's task runs alone: every
awaited descriptor call (the only places a transaction can be suspended and another task can
run) goes through :func:`dataplane_call`, which switches collection back on at the moment the
call really suspends the task and off again when the task resumes. A descriptor call that
completes without suspending (an in-memory one) changes nothing, so planning stays cheap.

The switch is only ours while we hold it: if something else disabled collection, nothing here
touches it.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: True while a running transaction holds collection off (only ever inside a running task).
_holding = False
#: Young objects above which the end of a pause promotes them to the oldest generation instead
#: of letting the collector scan them all at its next allocation (see :func:`_resume`).
PROMOTE_AFTER = 50_000


def _resume() -> None:
    """Switch collection back on after a pause.

    A pause that leaves many young objects (a 10k-service resync: ~400k) would have the
    collector scan all of them at the next allocation (~0.1 s), then again in the middle
    generation: they are what the transaction built (intents, values, the graph), which lives
    on, while its short-lived objects are already freed by their reference counts. Such a
    stretch's objects are moved straight to the oldest generation (``gc.freeze`` + ``unfreeze``:
    two list splices, no scan); a cycle among them is collected by the next full collection.
    Not done when something else holds objects frozen (their freeze is theirs).
    """
    if gc.get_count()[0] > PROMOTE_AFTER and gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()


@contextmanager
def planning() -> Iterator[None]:
    """Pause automatic collection around a transaction (outermost use only)."""
    global _holding
    if _holding or not gc.isenabled():
        yield
        return
    gc.disable()
    _holding = True
    try:
        yield
    finally:
        _holding = False
        _resume()


def _release() -> bool:
    global _holding
    if not _holding:
        return False
    _holding = False
    _resume()
    return True


def _hold() -> None:
    global _holding
    gc.disable()
    _holding = True


class dataplane_call(Generic[T]):
    """Await ``awaitable`` (a descriptor call); collection runs while it suspends the task."""

    __slots__ = ("_awaitable",)

    def __init__(self, awaitable: Awaitable[T]) -> None:
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, T]:
        inner = self._awaitable.__await__()
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                yielded = inner.send(sent) if thrown is None else inner.throw(thrown)
            except StopIteration as stop:
                result: T = stop.value
                return result
            sent, thrown = None, None
            held = _release()  # the task is about to be suspended: others may run now
            try:
                sent = yield yielded
            except GeneratorExit:
                inner.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - passed on to the awaited call
                thrown = exc
            if held:
                _hold()
