"""One writer thread for the local allocation file: saves in order, never blocking the loop.

Every save writes a snapshot of the whole state taken in the event loop's thread, and the
snapshots are written by a single worker thread in the order they were taken, so the file on
disk always ends at the latest state. The event loop never waits for a write (each costs a
file and a directory fsync): a *deferred* save lets the caller go on (e.g. wire the pod over
netlink) and wait for it later with :meth:`AllocationSaver.wait` (the CNI reply does, so an
allocation is on disk before anyone outside the agent learns the address); a *background*
save is for changes whose record lives elsewhere too (releases, addresses from etcd or the
Kubernetes state): its failure is logged and the next save, a complete snapshot, repairs the
file. Only :meth:`save` blocks; it is for callers outside the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor

from plugins.ipam.store import AllocationState, LocalAllocationFile


class AllocationSaver:
    """Serialises the saves of one :class:`LocalAllocationFile` through one worker thread."""

    def __init__(self, file: LocalAllocationFile, log: logging.Logger | None = None) -> None:
        self.file = file
        self.log = log or logging.getLogger("contiv.ipam")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ipam-save")
        self._last: Future[None] | None = None

    def save(self, state: AllocationState) -> None:
        """Write ``state`` and return once it is on disk (raises :class:`StateFileError`).

        Blocks the calling thread: never call it from the event loop.
        """
        self.save_deferred(state).result()

    def save_background(self, state: AllocationState, what: str) -> None:
        """Queue ``state`` for writing; a failure is logged (naming ``what``), not raised."""
        future = self.save_deferred(state)

        def report(done: Future[None]) -> None:
            error = done.exception()
            if error is not None:
                self.log.error("local allocation file not updated after %s: %s "
                               "(the next save writes the whole state again)", what, error)

        future.add_done_callback(report)

    def save_deferred(self, state: AllocationState) -> Future[None]:
        """Queue ``state`` for writing after every earlier save; the future tells the outcome."""
        future = self._executor.submit(self.file.save, state)
        self._last = future
        return future

    async def wait(self) -> None:
        """Wait until every save queued so far is on disk.

        The snapshots are complete and written in order, so the last one covers all earlier
        ones: its success is enough. Raises its :class:`StateFileError` when it failed.
        """
        last = self._last
        if last is not None:
            await asyncio.wrap_future(last)

    def pending(self) -> bool:
        """True while a queued save has not finished."""
        return self._last is not None and not self._last.done()

    def close(self) -> None:
        """Finish the queued saves and stop the worker thread."""
        self._executor.shutdown(wait=True)
