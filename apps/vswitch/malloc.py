"""The agent's C-heap policy: a fixed mmap threshold, so pod churn does not fragment the heap.

glibc serves a request of ``M_MMAP_THRESHOLD`` (128 KiB) or more with its own mapping, but
raises that threshold to the size of any such block freed (the *dynamic* threshold, up to
32 MiB). asyncio receives every datagram into a fresh 256 KiB buffer and shrinks it to the
message (``recvfrom(256 KiB)``; pyroute2's netlink sockets are datagram transports), and so,
once the first buffer was freed, every netlink reply became a 256 KiB heap block shrunk in
place: the small message stays where the buffer began, and when it outlives its neighbours it
splits the free space around it. Pod churn left about one such hole per pod ADD/DEL (a few
KiB each: the heap grew ~5.7 KiB per cycle while the memory in use stayed flat,
docs/reliability.md "Memory under churn"). Fixing the threshold turns each buffer into its
own mapping, shrunk (``mremap``) and unmapped with its message: the heap stays flat. It costs
no measurable time per datagram here.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's ``mallopt`` parameter number and its documented default threshold.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold to ``threshold`` bytes (disabling its dynamic raise; 0: leave
    glibc's dynamic threshold).

    Returns False where there is no glibc ``mallopt`` (another C library) or it refuses.
    """
    if threshold <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
