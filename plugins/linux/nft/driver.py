"""The nftables driver: atomic batches and structured read-back of one table, in any namespace.

Usage (blocking calls; ``a``-prefixed coroutines run them off the event loop)::

    nft = Nft("my-netns")                       # "" = the caller's own namespace
    nft.apply('''
        table ip contiv-svc { }
        flush table ip contiv-svc
        table ip contiv-svc { chain pre { type nat hook prerouting priority dstnat; } }
    ''')                                        # one batch = one kernel transaction
    nft.apply([{"add": {"element": {...}}}])   # JSON commands (libnftables JSON schema)
    table = nft.list_table("ip", "contiv-svc")  # NftTable | None

Every :meth:`Nft.apply` is ONE netlink batch: the kernel applies all of it or nothing, and an
error raises :class:`NftError` with nft's message (the table is then unchanged). Two backends
do the work, chosen per instance:

* ``lib`` (default): libnftables (``libnftables.so.1``, Debian ``libnftables1``) in-process
  through ctypes. The call runs in a thread that has entered the namespace (the shared worker of
  :mod:`plugins.linux.netns`); ctypes releases the GIL while the library works.
* ``cli``: the ``nft`` binary, ``nft -f -`` (``nsenter --net=PATH`` for another namespace).

Read-back (:meth:`Nft.list_table`) parses ``list table`` JSON into :class:`NftTable`: chains
with their rules (handle, comment, JSON expressions) and sets/maps with their elements in a
canonical text form that is also valid nft syntax (``10.96.0.1 . tcp . 80 : 10.1.1.2 . 8080``),
so desired elements written as text compare equal to what the kernel reports. The driver only
ever names the table it is given: it never lists or flushes the ruleset.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core import tuning
from plugins.linux.netns import call_in_namespace, namespace_path, run_in_namespace
from plugins.linux.nft.contexts import ContextPool, context_factory

_JSON_FLAG = 1 << 4  # NFT_CTX_OUTPUT_JSON
_lib: ctypes.CDLL | None = None
_contexts: ContextPool | None = None
_lib_lock = threading.Lock()

Batch = str | Sequence[dict[str, Any]]


class NftError(RuntimeError):
    """nft rejected a batch or a listing; the message is nft's own (the kernel is unchanged)."""


def _library() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL("libnftables.so.1")
            except OSError as exc:
                raise NftError(f"libnftables is not installed (Debian package libnftables1): {exc}") from exc
            vp, cp = ctypes.c_void_p, ctypes.c_char_p
            lib.nft_ctx_new.restype = vp
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [vp]
            lib.nft_ctx_output_set_flags.argtypes = [vp, ctypes.c_uint]
            lib.nft_ctx_buffer_output.argtypes = [vp]
            lib.nft_ctx_buffer_error.argtypes = [vp]
            lib.nft_ctx_get_output_buffer.argtypes = [vp]
            lib.nft_ctx_get_output_buffer.restype = cp
            lib.nft_ctx_get_error_buffer.argtypes = [vp]
            lib.nft_ctx_get_error_buffer.restype = cp
            lib.nft_run_cmd_from_buffer.argtypes = [vp, cp]
            _lib = lib
        return _lib


def _pool() -> ContextPool:
    global _contexts
    lib = _library()  # takes _lib_lock itself
    with _lib_lock:
        if _contexts is None:
            _contexts = ContextPool(*context_factory(lib))
        return _contexts


def _lib_run(text: str, json_output: bool) -> str:
    """One libnftables command buffer in the calling thread's namespace; returns its output.

    Batches reuse a pooled context of this namespace (:mod:`plugins.linux.nft.contexts`: closing one
    costs a kernel RCU wait after deletes); listings use their own, freed at once.
    """
    lib = _library()
    listing = text.startswith("list ")
    if listing:
        ctx, inode = lib.nft_ctx_new(0), 0
        if not ctx:
            raise NftError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
    else:
        inode, ctx = _pool().acquire()
    rc = -1
    try:
        lib.nft_ctx_output_set_flags(ctx, _JSON_FLAG if json_output else 0)
        rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
    finally:
        if listing:
            lib.nft_ctx_free(ctx)
        else:
            _pool().release(inode, ctx, healthy=rc == 0)
        tuning.trim_heap(len(text))  # the app's policy: the heap a big batch grew
    if rc != 0:
        raise NftError(err.strip() or f"nft failed (rc {rc})")
    return out


def release_idle_contexts() -> int:
    """Close every idle pooled context now (each holds its namespace alive until closed)."""
    return 0 if _contexts is None else _contexts.close_idle()


@dataclass
class NftRule:
    """One rule as read back: its handle, comment and JSON expressions."""

    handle: int
    comment: str | None
    expr: list[Any]


@dataclass
class NftChain:
    """A chain as read back (``type``/``hook``/``prio``/``policy`` are None for regular chains)."""

    name: str
    type: str | None = None
    hook: str | None = None
    prio: int | None = None
    policy: str | None = None
    rules: list[NftRule] = field(default_factory=list)


@dataclass
class NftSet:
    """A set or map as read back; ``elements`` maps canonical key -> canonical value ("" for sets)."""

    name: str
    kind: str  # "set" or "map"
    type: tuple[str, ...]
    map: str | None = None
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    elements: dict[str, str] = field(default_factory=dict)
    comment: str | None = None


@dataclass
class NftTable:
    """One table as read back."""

    family: str
    name: str
    comment: str | None = None
    chains: dict[str, NftChain] = field(default_factory=dict)
    sets: dict[str, NftSet] = field(default_factory=dict)


def canonical(value: Any) -> str:
    """The nft text of a JSON element/key/value (concatenations joined by ``" . "``)."""
    if isinstance(value, dict):
        if "concat" in value:
            return " . ".join(canonical(v) for v in value["concat"])
        if "elem" in value:
            return canonical(value["elem"]["val"])
        if "prefix" in value:
            return f"{canonical(value['prefix']['addr'])}/{value['prefix']['len']}"
        if "range" in value:
            return "-".join(canonical(v) for v in value["range"])
        for verdict in ("goto", "jump"):
            if verdict in value:
                return f"{verdict} {value[verdict]['target']}"
        if len(value) == 1:  # {"accept": null}, {"drop": null}
            return str(next(iter(value)))
    if isinstance(value, list):
        return " . ".join(canonical(v) for v in value)
    return str(value)


def parse_table(listing: dict[str, Any], family: str, name: str) -> NftTable:
    """An :class:`NftTable` from the JSON of ``list table FAMILY NAME``."""
    table = NftTable(family, name)
    for item in listing.get("nftables", []):
        kind, body = next(iter(item.items()))
        if kind == "table":
            table.comment = body.get("comment")
        elif kind == "chain":
            table.chains[body["name"]] = NftChain(body["name"], body.get("type"), body.get("hook"),
                                                  body.get("prio"), body.get("policy"))
        elif kind == "rule":
            chain = table.chains.setdefault(body["chain"], NftChain(body["chain"]))
            chain.rules.append(NftRule(body["handle"], body.get("comment"), body.get("expr", [])))
        elif kind in ("set", "map"):
            types = body["type"] if isinstance(body["type"], list) else [body["type"]]
            elements: dict[str, str] = {}
            for elem in body.get("elem", []):
                if kind == "map":
                    elements[canonical(elem[0])] = canonical(elem[1])
                else:
                    elements[canonical(elem)] = ""
            mapped = body.get("map")
            table.sets[body["name"]] = NftSet(
                body["name"], kind, tuple(types),
                canonical(mapped) if mapped is not None and not isinstance(mapped, str) else mapped,
                tuple(body.get("flags", ())), body.get("timeout"), elements, body.get("comment"))
    return table


class Nft:
    """nftables in namespace ``netns`` (a name under /var/run/netns, a path, or "" for our own).

    ``backend`` is ``"lib"`` (libnftables in-process) or ``"cli"`` (the ``nft`` binary).
    """

    def __init__(self, netns: str = "", backend: str = "lib") -> None:
        if backend not in ("lib", "cli"):
            raise ValueError(f"nft backend {backend!r}: want 'lib' or 'cli'")
        self.netns = netns
        self.backend = backend
        #: Batches applied by this instance (tests and benchmarks count kernel writes).
        self.batches = 0

    # ---- blocking API --------------------------------------------------------------------

    def apply(self, batch: Batch) -> None:
        """Apply ``batch`` (nft text, or a list of JSON commands) as one atomic transaction."""
        text = _batch_text(batch)
        if text is not None:
            self._run(text, json_io=not isinstance(batch, str))
            self.batches += 1

    def list_table(self, family: str, name: str) -> NftTable | None:
        """The table read back, or None when it does not exist."""
        try:
            out = self._run(f"list table {family} {name}", json_io=True)
        except NftError as exc:
            if _missing(exc):
                return None
            raise
        return parse_table(json.loads(out), family, name)

    def delete_table(self, family: str, name: str) -> bool:
        """Delete the table if it exists; True when it did."""
        try:
            self.apply(f"delete table {family} {name}")
        except NftError as exc:
            if _missing(exc):
                return False
            raise
        return True

    # ---- async API (the event loop keeps running) ----------------------------------------

    async def aapply(self, batch: Batch) -> None:
        """:meth:`apply` off the event loop."""
        text = _batch_text(batch)
        if text is not None:
            await self._arun(text, json_io=not isinstance(batch, str))
            self.batches += 1

    async def alist_table(self, family: str, name: str) -> NftTable | None:
        """:meth:`list_table` off the event loop."""
        try:
            out = await self._arun(f"list table {family} {name}", json_io=True)
        except NftError as exc:
            if _missing(exc):
                return None
            raise
        return parse_table(json.loads(out), family, name)

    async def atable_exists(self, family: str, name: str) -> bool:
        """Whether the namespace has the table (lists table names only: cheap at any size)."""
        out = await self._arun(f"list tables {family}", json_io=True)
        return any(item.get("table", {}).get("name") == name for item in json.loads(out).get("nftables", []))

    # ---- backends ------------------------------------------------------------------------

    def _run(self, text: str, json_io: bool) -> str:
        if self.backend == "lib":
            return run_in_namespace(self.netns, lambda: _lib_run(text, json_io))
        return self._cli(text, json_io)

    async def _arun(self, text: str, json_io: bool) -> str:
        if self.backend == "lib" and self.netns:
            return await call_in_namespace(self.netns, lambda: _lib_run(text, json_io))
        if self.backend == "lib":
            return await asyncio.to_thread(_lib_run, text, json_io)
        return await asyncio.to_thread(self._cli, text, json_io)

    def _cli(self, text: str, json_io: bool) -> str:
        listing = text.startswith("list ")
        cmd = ["nft", *(["-j"] if json_io else []), *(text.split() if listing else ["-f", "-"])]
        path = namespace_path(self.netns)
        if path is not None:
            cmd = ["nsenter", f"--net={path}", *cmd]
        proc = subprocess.run(cmd, input=None if listing else text, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise NftError(proc.stderr.strip() or f"nft failed ({proc.returncode})")
        return proc.stdout


def _batch_text(batch: Batch) -> str | None:
    """The command buffer of a batch; None when there is nothing to do."""
    if isinstance(batch, str):
        return batch if batch.strip() else None
    return json.dumps({"nftables": list(batch)}) if batch else None


def _missing(exc: NftError) -> bool:
    return "No such file or directory" in str(exc)
