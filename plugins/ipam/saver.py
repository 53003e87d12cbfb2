"""One writer thread for the local allocation file: saves in order, optionally not waited for.

Every save writes a snapshot of the whole state taken in the event loop's thread, and the
snapshots are written by a single worker thread in the order they were taken, so the file on
disk always ends at the latest state. A *deferred* save lets the caller go on (e.g. wire the
pod over netlink while the file and directory are fsynced) and wait for it later with
:meth:`AllocationSaver.wait`; a plain save blocks until its snapshot (and every earlier one) is
on disk, exactly like writing the file directly.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor

from plugins.ipam.store import AllocationState, LocalAllocationFile


class AllocationSaver:
    """Serialises the saves of one :class:`LocalAllocationFile` through one worker thread."""

    def __init__(self, file: LocalAllocationFile) -> None:
        self.file = file
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ipam-save")
        self._last: Future[None] | None = None

    def save(self, state: AllocationState) -> None:
        """Write ``state`` and return once it is on disk (raises :class:`StateFileError`)."""
        self.save_deferred(state).result()

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
