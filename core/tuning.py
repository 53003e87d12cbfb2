"""Process-wide tuning: the app's explicit policy, which library code asks for through this API.

Two things here change the whole process, so neither is a library's decision: the app sets the
policy once at start (:func:`configure`; the agent's is ``apps/vswitch/process.py``, with config
switches) and library code only asks (:func:`gc_paused`, :class:`dataplane_call`,
:func:`trim_heap`). Without a policy (tests, other apps, tools) nothing process-wide happens.

**GC pause.** A large transaction allocates many small objects; the generational collector
would otherwise rescan young objects over and over while the plan is computed. With
``gc_pause``, automatic collection is off inside :func:`gc_paused` (the controller wraps one
event's handlers and its transaction, the scheduler a transaction's planning) but never while
that task waits: every awaited descriptor call (the only places a transaction can be suspended
and another task can run) goes through :class:`dataplane_call`, which switches collection back
on at the moment the call really suspends the task and off again when the task resumes. A
descriptor call that completes without suspending (an in-memory one) changes nothing. The
switch is only ours while we hold it: if something else disabled collection, nothing here
touches it.

**Heap trim.** With ``heap_trim``, :func:`trim_heap` gives the C heap that parsing a big batch
grew back to the system (glibc keeps it per thread arena otherwise: ~100 MB after a 10k-service
nftables table).
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Awaitable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessTuning:
    """The process-wide policy (all off: what a process gets unless its app configures one)."""

    #: Pause automatic garbage collection inside :func:`gc_paused` (never while the task waits).
    gc_pause: bool = False
    #: Young objects above which the end of a pause promotes them to the oldest generation
    #: instead of letting the collector scan them all at its next allocation.
    gc_promote_after: int = 50_000
    #: Give the C heap back to the system after a batch of at least ``heap_trim_min_bytes``.
    heap_trim: bool = False
    heap_trim_min_bytes: int = 1 << 20


_policy = ProcessTuning()
#: True while a running transaction holds collection off (only ever inside a running task).
_holding = False
#: The default young-object threshold (tests and docs refer to it).
PROMOTE_AFTER = ProcessTuning.gc_promote_after


def configure(policy: ProcessTuning) -> None:
    """Set the process's policy (the app, once, at start)."""
    global _policy
    _policy = policy


def current() -> ProcessTuning:
    """The process's policy."""
    return _policy


def trim_heap(batch_bytes: int) -> bool:
    """After a batch of ``batch_bytes``: return the freed C heap to the system when the policy
    says so; whether it did."""
    if not _policy.heap_trim or batch_bytes < _policy.heap_trim_min_bytes:
        return False
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        return False
    return True


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
    if gc.get_count()[0] > _policy.gc_promote_after and gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Automatic collection paused in this stretch, if the policy says so (outermost use only;
    :class:`dataplane_call` resumes it while the task waits)."""
    global _holding
    if not _policy.gc_pause or _holding or not gc.isenabled():
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
