"""Errors the controller reports to producers and records in the event history."""

from __future__ import annotations

from plugins.kvscheduler.api import TxnResult


class EventQueueFullError(RuntimeError):
    """A queue of the event loop is full: the producer must retry later (never blocks)."""


class DeadlockError(RuntimeError):
    """A blocking event was pushed from inside the event loop, which would wait for itself."""


class EventLoopAbortingError(RuntimeError):
    """The loop stopped processing after a fatal error or a missed startup resync."""


class EventLoopStoppedError(RuntimeError):
    """The controller was closed before the event was processed."""


class TransactionFailedError(RuntimeError):
    """The event's scheduler transaction reported errors (by key)."""

    def __init__(self, result: TxnResult) -> None:
        errors = "; ".join(f"{key}: {error}" for key, error in sorted(result.errors.items()))
        super().__init__(f"transaction #{result.seq} failed: {errors}")
        self.result = result
