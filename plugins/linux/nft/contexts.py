"""Reused libnftables contexts, one pool per network namespace.

Why: a libnftables context owns a netlink socket, and closing a netfilter netlink socket makes
the kernel finish the destruction of everything the last transactions deleted before the close
returns (``nft_rcv_nl_event`` flushes nf_tables' destroy work, which waits for an RCU grace
period). With a fresh context per batch, every batch that deletes anything - a set element, a
rule, a chain - paid that wait: measured here, a one-element delete took 15.7 ms with a fresh
context and 0.2 ms with a reused one (an add: 0.26 vs 0.23 ms). A reused context lets the
kernel do the destruction in the background.

A socket belongs to the namespace it was opened in, so contexts are pooled by the namespace of
the thread that runs the batch (its nsfs inode) and only ever used there. A context holds its
namespace alive, so one idle for :data:`IDLE_S` is closed by a background reaper: a namespace
deleted by its owner is released a few seconds later. A context whose batch failed is closed at
once (the next batch starts clean). Listings do not use the pool: their cache holds every element
of the table listed.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable

#: Seconds a pooled context may stay unused before the reaper closes it.
IDLE_S = 3.0


def _namespace_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


class ContextPool:
    """Idle libnftables contexts per namespace; ``new``/``free`` create and destroy one."""

    def __init__(self, new: Callable[[], int], free: Callable[[int], None], idle_s: float = IDLE_S) -> None:
        self._new, self._free, self.idle_s = new, free, idle_s
        self._lock = threading.Lock()
        self._idle: dict[int, list[tuple[int, float]]] = {}
        self._reaper: threading.Thread | None = None
        self._wake = threading.Event()

    def acquire(self) -> tuple[int, int]:
        """(namespace inode, context) for the calling thread's namespace: an idle one or new."""
        inode = _namespace_inode()
        with self._lock:
            idle = self._idle.get(inode)
            if idle:
                return inode, idle.pop()[0]
        return inode, self._new()

    def release(self, inode: int, ctx: int, healthy: bool = True) -> None:
        """Give ``ctx`` back for reuse (``healthy``) or close it."""
        if not healthy:
            self._free(ctx)
            return
        with self._lock:
            self._idle.setdefault(inode, []).append((ctx, time.monotonic()))
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="nft-ctx-reaper", daemon=True)
                self._reaper.start()

    def close_idle(self, older_than_s: float = 0.0) -> int:
        """Close the idle contexts unused for ``older_than_s``; returns how many were closed."""
        limit = time.monotonic() - older_than_s
        doomed: list[int] = []
        with self._lock:
            for inode in list(self._idle):
                keep = [(c, t) for c, t in self._idle[inode] if t > limit]
                doomed += [c for c, t in self._idle[inode] if t <= limit]
                if keep:
                    self._idle[inode] = keep
                else:
                    del self._idle[inode]
        for ctx in doomed:  # outside the lock: a close may wait for the kernel
            self._free(ctx)
        return len(doomed)

    def idle_count(self, inode: int | None = None) -> int:
        """Idle contexts (of the namespace with nsfs ``inode``, or all)."""
        with self._lock:
            if inode is not None:
                return len(self._idle.get(inode, ()))
            return sum(len(v) for v in self._idle.values())

    def _reap(self) -> None:
        while True:
            self._wake.wait(self.idle_s / 2)
            self._wake.clear()
            self.close_idle(self.idle_s)


def context_factory(lib: ctypes.CDLL) -> tuple[Callable[[], int], Callable[[int], None]]:
    """``new``/``free`` for :class:`ContextPool` over the loaded library (buffered output)."""

    def new() -> int:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise OSError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        return int(ctx)

    def free(ctx: int) -> None:
        lib.nft_ctx_free(ctx)

    return new, free
