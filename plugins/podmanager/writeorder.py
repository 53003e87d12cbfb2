"""Ordering of the pod records' etcd writes: per pod in call order, pods concurrently, and a
full synchronisation alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable


class WriteOrder:
    """Writes of one key run one at a time in call order (FIFO locks); writes of different
    keys run concurrently (etcd commits concurrent proposals together, where one global lock
    made 10 parallel ADDs wait for 10 round trips in a row); :meth:`exclusive` waits for the
    writes in flight, holds new ones back and runs alone.
    """

    def __init__(self) -> None:
        # Per-key locks with their number of users, dropped when unused.
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}
        self._exclusive = asyncio.Lock()
        self._no_exclusive = asyncio.Event()
        self._no_exclusive.set()
        self._in_flight = 0
        self._no_writes = asyncio.Event()
        self._no_writes.set()

    @contextlib.asynccontextmanager
    async def write(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                while not self._no_exclusive.is_set():
                    await self._no_exclusive.wait()
                self._in_flight += 1  # no await since the check: atomic in the event loop
                self._no_writes.clear()
                try:
                    yield
                finally:
                    self._in_flight -= 1
                    if self._in_flight == 0:
                        self._no_writes.set()
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._exclusive:
            self._no_exclusive.clear()
            try:
                await self._no_writes.wait()
                yield
            finally:
                self._no_exclusive.set()
