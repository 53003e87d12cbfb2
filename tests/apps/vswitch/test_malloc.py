"""The agent pins glibc's mmap threshold (apps/vswitch/malloc.py), in a child process."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import ctypes
from apps.vswitch.malloc import MMAP_THRESHOLD_BYTES, fix_mmap_threshold

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.malloc_usable_size.restype = ctypes.c_size_t
libc.malloc_usable_size.argtypes = [ctypes.c_void_p]

def is_mapped(size):
    p = libc.malloc(size)
    mmapped = bool(ctypes.c_size_t.from_address(p - 8).value & 2)  # IS_MMAPPED bit
    libc.free(p)
    return mmapped

assert fix_mmap_threshold()
# Freeing a mapped block no longer raises the threshold: 256 KiB (asyncio's datagram buffer)
# stays a mapping of its own, time after time; small blocks stay on the heap.
for _ in range(3):
    assert is_mapped(256 * 1024) and is_mapped(MMAP_THRESHOLD_BYTES + 4096)
assert not is_mapped(64 * 1024)
print("ok")
"""


def test_the_threshold_stays_where_it_was_put() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
