"""Run nftables commands in a network namespace through libnftables (no process per call).

One :func:`run_nft` call is one ``nft -f`` batch: the kernel applies it as one atomic
transaction or not at all. The library is loaded with ctypes from Debian's ``libnftables1``;
each call makes a fresh context inside the target namespace (the context's netlink socket
belongs to the namespace it was opened in), in the namespace worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from plugins.linux.netns import call_in_namespace

_OUTPUT_JSON = 1 << 4
_lib: ctypes.CDLL | None = None
_lock = threading.Lock()


class NftError(OSError):
    """nft rejected a batch (the message is nft's error output)."""


def _library() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is None:
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            lib = ctypes.CDLL(name)
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            _lib = lib
        return _lib


def run_nft_here(script: str, json_output: bool = False) -> str:
    """Run ``script`` in the calling thread's namespace; returns nft's output."""
    lib = _library()
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise NftError("libnftables: cannot create a context")
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if json_output:
            lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON)
        rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        if rc != 0:
            err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode().strip()
            raise NftError(err or f"nft failed ({rc})")
        return out
    finally:
        lib.nft_ctx_free(ctx)


async def run_nft(namespace: str, script: str, json_output: bool = False) -> str:
    """Run ``script`` (one atomic batch) inside ``namespace`` ("" = the agent's own)."""
    return await call_in_namespace(namespace, lambda: run_nft_here(script, json_output))
