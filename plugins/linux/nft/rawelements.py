"""Set and map elements written straight over nf_tables netlink: no nft parser on the way.

libnftables spends about 10 us of parsing, evaluation and allocation per element before the
kernel sees it (10k services: ~80k elements, ~0.7 s of the ~1 s load; the kernel's part is
~0.2 s). For the sets whose declaration this module understands (:func:`layout`), elements
are encoded here, a few bytes per field, and sent as ONE netlink batch (one kernel
transaction) of ``NFT_MSG_NEWSETELEM`` messages (after ``NFT_MSG_DELSETELEM`` ones with the
keys of the elements an update removes). The encoding is nft's own (each field of a
concatenation padded to 4 bytes, addresses and ports in network order, ``numgen`` and marks
in host order, verdicts as code and chain), so nft lists the elements back exactly as if it
had written them (a test compares the listings).

Only what is known is encoded: ``type`` or ``typeof`` keys made of IPv4 addresses, protocols,
ports, marks and ``numgen`` results; data of those or verdicts; no flags (intervals need
range encoding, timeouts are the dataplane's). Anything else - and any element that does not
parse - stays with nft text (:func:`encode` returns None for the whole set).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from plugins.linux import netlink as nl
from plugins.linux.netns import call_in_namespace, run_in_namespace
from plugins.linux.nft.driver import NftError
from plugins.linux.nft.table import NFT_FAMILIES
from plugins.linux.protocols import IP_PROTOCOLS

_NETLINK_NETFILTER = 12
_SUBSYS_NFTABLES = 10
_NEWSETELEM = (_SUBSYS_NFTABLES << 8) | 12
_DELSETELEM = (_SUBSYS_NFTABLES << 8) | 14
_BATCH_BEGIN, _BATCH_END = 16, 17
_SO_SNDBUFFORCE = 32
_VERDICTS = {"accept": 1, "drop": 0, "continue": -1, "return": -5, "jump": -3, "goto": -4}
#: Elements per NEWSETELEM message (a netlink attribute is at most 64 KiB; ~60 bytes each).
_PER_MESSAGE = 800
#: Seconds to wait for the kernel's answers (it answers after the whole batch).
_REPLY_TIMEOUT_S = 120.0

_GENMSG = struct.Struct("=BBH")
_HOST_U32: Literal["little", "big"] = "little" if sys.byteorder == "little" else "big"

#: Field kinds: ``a`` IPv4 address, ``p`` protocol, ``s`` port, ``i`` host-order 32-bit
#: integer (marks, numgen); data ``v`` is a verdict.
_TYPES = {"ipv4_addr": "a", "inet_proto": "p", "inet_service": "s", "mark": "i"}
_TYPEOF = {"ip daddr": "a", "ip saddr": "a", "meta l4proto": "p", "meta mark": "i", "ct mark": "i"}
_PORT_EXPRS = {f"{p} {d}" for p in ("th", "tcp", "udp", "sctp") for d in ("sport", "dport")}


class NetlinkWriteError(NftError):
    """The kernel refused an element batch (nothing of it was applied)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """How a set's elements are encoded: key field kinds, data field kinds ("" for a set)."""

    key: str
    data: str

    def keys_only(self) -> Layout:
        """The layout of this set's keys alone (what a delete names)."""
        return Layout(self.key, "")


def _field_kind(text: str, typeof: bool) -> str | None:
    text = text.strip()
    if not typeof:
        return _TYPES.get(text)
    if text in _PORT_EXPRS:
        return "s"
    if text.startswith("numgen random mod ") or text.startswith("numgen inc mod "):
        return "i"
    return _TYPEOF.get(text)


def layout(decl: str) -> Layout | None:
    """The encoding of a set declaration body (``type ...;``), None when not supported."""
    statements = [s.strip() for s in decl.split(";") if s.strip()]
    if not statements or any(not s.startswith("size ") for s in statements[1:]):
        return None
    word, _, spec = statements[0].partition(" ")
    if word not in ("type", "typeof"):
        return None
    key_text, sep, data_text = spec.partition(" : ")
    key = [_field_kind(part, word == "typeof") for part in key_text.split(" . ")]
    data: list[str | None] = []
    if sep and data_text.strip() == "verdict" and word == "type":
        data = ["v"]
    elif sep:
        data = [_field_kind(part, word == "typeof") for part in data_text.split(" . ")]
    if None in key or None in data:
        return None
    return Layout("".join(k for k in key if k), "".join(d for d in data if d))


class Fields:
    """Encoded field values and field sequences, memoised by their text.

    Keys share their leading fields (a frontend's address . protocol . port starts every one of
    its backends' keys; an address appears under several ports), so a key is encoded as its
    prefix (looked up) and its last field: one split and two lookups for most elements.
    """

    def __init__(self) -> None:
        self.cache: dict[str, dict[str, bytes]] = {}

    def fields(self, kinds: str, text: str) -> bytes:
        """``text`` (``f1 . f2 ...``, one field per kind) encoded; ValueError/KeyError/OSError
        when it does not parse as ``kinds`` says."""
        cache = self.cache.get(kinds)
        if cache is None:
            cache = self.cache[kinds] = {}
        found = cache.get(text)
        if found is None:
            if len(kinds) == 1:
                found = _encode(kinds, text)
            else:
                prefix, _, last = text.rpartition(" . ")
                found = self.fields(kinds[:-1], prefix) + self.fields(kinds[-1], last)
            cache[text] = found
        return found


def _encode(kind: str, token: str) -> bytes:
    if kind == "a":
        return socket.inet_pton(socket.AF_INET, token)
    if kind == "p":
        number = IP_PROTOCOLS[token] if token in IP_PROTOCOLS else int(token)
        return bytes((number, 0, 0, 0)) if 0 <= number < 256 else _bad(token)
    if kind == "s":
        number = int(token)
        return number.to_bytes(2, "big") + b"\0\0" if 0 <= number < 65536 else _bad(token)
    if kind == "i":
        return int(token, 0).to_bytes(4, _HOST_U32)
    word, _, chain = token.partition(" ")
    code = _VERDICTS[word]
    inner = nl.attribute(1, code.to_bytes(4, "big", signed=True))
    if chain:
        inner += nl.attribute(2, chain.encode() + b"\0")
    elif code in (-3, -4):
        _bad(token)
    return nl.attribute(2 | nl.NESTED, nl.attribute(2 | nl.NESTED, inner))  # DATA { VERDICT { CODE, CHAIN } }


def _bad(token: str) -> bytes:
    raise ValueError(f"bad field {token!r}")


def encode(spec: Layout, elements: Sequence[tuple[str, str]], fields: Fields | None = None) -> list[bytes] | None:
    """Each ``(key, data)`` (nft text) as a ``NFTA_LIST_ELEM`` attribute; None if one does not
    parse as ``spec`` says (the set then goes to nft text whole).

    Every key field encodes to 4 bytes, so a set's key has one size and the attribute headers
    around it are constant (per verdict for verdict maps). ``fields`` may be shared by the sets
    of one table (their keys share prefixes).
    """
    fields = fields or Fields()
    key_kinds, data_kinds = spec.key, spec.data
    key_size = 4 * len(key_kinds)
    key_part = nl.ATTR.pack(8 + key_size, 1 | nl.NESTED) + nl.ATTR.pack(4 + key_size, 1)  # KEY { VALUE
    data_size = 4 * len(data_kinds) if data_kinds != "v" else 0
    data_part = nl.ATTR.pack(8 + data_size, 2 | nl.NESTED) + nl.ATTR.pack(4 + data_size, 1) if data_size else b""
    fixed = nl.ATTR.pack(4 + 8 + key_size + (8 + data_size if data_size else 0), 1 | nl.NESTED) + key_part
    heads: dict[str, bytes] = {}  # verdict maps: the element's head per verdict (its size)
    encoded = fields.fields
    cache = fields.cache
    keys = cache.setdefault(key_kinds, {})  # whole keys: the prefixes of another set's keys
    prefixes = cache.setdefault(key_kinds[:-1], {}) if len(key_kinds) > 1 else keys
    lasts = cache.setdefault(key_kinds[-1], {})
    datas = cache.setdefault(data_kinds, {}) if data_kinds else {}
    split_data = data_size > 4
    data_prefixes = cache.setdefault(data_kinds[:-1], {}) if split_data else datas
    data_lasts = cache.setdefault(data_kinds[-1], {}) if split_data else datas
    out: list[bytes] = []
    append = out.append
    try:
        for key, data in elements:
            if prefixes is keys:
                kb = keys.get(key) or encoded(key_kinds, key)
            else:
                prefix, _, last = key.rpartition(" . ")
                kb = keys[key] = ((prefixes.get(prefix) or encoded(key_kinds[:-1], prefix))
                                  + (lasts.get(last) or encoded(key_kinds[-1], last)))
            if split_data:
                prefix, _, last = data.rpartition(" . ")
                db = ((data_prefixes.get(prefix) or encoded(data_kinds[:-1], prefix))
                      + (data_lasts.get(last) or encoded(data_kinds[-1], last)))
                append(b"".join((fixed, kb, data_part, db)))
            elif data_size:
                db = datas.get(data) or encoded(data_kinds, data)
                append(b"".join((fixed, kb, data_part, db)))
            elif data_kinds:  # a verdict
                vb = datas.get(data) or encoded("v", data)
                head = heads.get(data)
                if head is None:
                    head = heads[data] = nl.ATTR.pack(4 + 8 + key_size + len(vb), 1 | nl.NESTED) + key_part
                append(head + kb + vb)
            elif data:
                return None
            else:
                append(fixed + kb)
    except (ValueError, KeyError, OSError):
        return None
    return out


def _message(kind: int, flags: int, seq: int, family: int, payload: bytes, res_id: int = 0) -> bytes:
    return nl.message(kind, flags, seq, _GENMSG.pack(family, 0, res_id) + payload)


def batch(family: str, table: str, encoded: Mapping[str, list[bytes]],
          deleted: Mapping[str, list[bytes]] | None = None) -> tuple[bytes, dict[int, str]]:
    """One netlink batch (one kernel transaction) deleting the ``deleted`` elements (their keys,
    encoded with the set's :meth:`Layout.keys_only`), then adding the encoded ones; (bytes,
    message seq -> set name)."""
    fam = NFT_FAMILIES[family]
    head = nl.attribute(1, table.encode() + b"\0")
    parts = [_message(_BATCH_BEGIN, nl.F_REQUEST, 1, 0, b"", socket.htons(_SUBSYS_NFTABLES))]
    seqs: dict[int, str] = {}
    seq = 2
    for kind, flags, items in ((_DELSETELEM, nl.F_REQUEST | nl.F_ACK, deleted or {}),
                               (_NEWSETELEM, nl.F_REQUEST | nl.F_CREATE | nl.F_ACK, encoded)):
        for name, elements in items.items():
            where = head + nl.attribute(2, name.encode() + b"\0")
            for start in range(0, len(elements), _PER_MESSAGE):
                payload = where + nl.attribute(3 | nl.NESTED, b"".join(elements[start:start + _PER_MESSAGE]))
                parts.append(_message(kind, flags, seq, fam, payload))
                seqs[seq] = name
                seq += 1
    parts.append(_message(_BATCH_END, nl.F_REQUEST, seq, 0, b"", socket.htons(_SUBSYS_NFTABLES)))
    return b"".join(parts), seqs


class _Sockets:
    """nf_tables netlink sockets kept for reuse, per network namespace (of the calling thread).

    Releasing such a socket makes nf_tables wait for the last commit's deferred destruction (it
    flushes its destroy work on every NETLINK_URELEASE: an RCU grace period, 10-15 ms after a
    commit that deleted elements), and the next batch waits for that. Kept open, a small
    change costs what the kernel does. At most ``limit`` are kept (least recently used first
    out), so a socket keeps a deleted namespace alive only until others push it out; one in
    use is out of the pool (never shared between threads)."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._idle: OrderedDict[tuple[int, int], socket.socket] = OrderedDict()

    def take(self) -> tuple[tuple[int, int], socket.socket]:
        st = os.stat("/proc/thread-self/ns/net")
        here = (st.st_dev, st.st_ino)
        with self._lock:
            sock = self._idle.pop(here, None)
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_NETFILTER)
            try:
                sock.setsockopt(nl.SOL_NETLINK, nl.NETLINK_CAP_ACK, 1)  # errors without the request copied
                sock.bind((0, 0))
            except BaseException:
                sock.close()
                raise
        return here, sock

    def give(self, here: tuple[int, int], sock: socket.socket) -> None:
        with self._lock:
            self._idle[here] = sock
            self._idle.move_to_end(here)
            out = [self._idle.popitem(last=False)[1] for _ in range(len(self._idle) - self.limit)]
        for old in out:
            old.close()


_SOCKETS = _Sockets()


def _send(data: bytes, seqs: Mapping[int, str]) -> None:
    """Send one batch from the calling thread's namespace and wait for every message's answer."""
    here, sock = _SOCKETS.take()
    answered = False
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, len(data) + (1 << 16))
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, len(data) + (1 << 16))
        sock.settimeout(_REPLY_TIMEOUT_S)
        sock.sendall(data)
        # The answers come after the commit (or the abort) of the whole batch.
        try:
            nl.wait_for_acks(sock, seqs, _REPLY_TIMEOUT_S)
        except nl.NetlinkAckTimeout as exc:
            raise NetlinkWriteError(f"no answer from the kernel for {len(exc.pending)} element messages") from None
        except nl.NetlinkRefused as exc:  # one refused message aborts the whole transaction
            what = f"the elements of set {seqs[exc.seq]}" if exc.seq in seqs else "the element batch"
            raise NetlinkWriteError(f"the kernel refused {what}: {exc.strerror}") from None
        answered = True
    finally:
        if answered:  # nothing of this batch is left to read: the next batch may use it
            _SOCKETS.give(here, sock)
        else:
            sock.close()


def write(namespace: str, family: str, table: str, encoded: Mapping[str, list[bytes]]) -> None:
    """Add the encoded elements to ``family table`` in ``namespace`` as one transaction."""
    data, seqs = batch(family, table, encoded)
    if seqs:
        run_in_namespace(namespace, lambda: _send(data, seqs))


async def awrite(namespace: str, family: str, table: str, encoded: Mapping[str, list[bytes]],
                 deleted: Mapping[str, list[bytes]] | None = None) -> None:
    """:func:`write` off the event loop (with ``deleted`` elements removed first, in the same
    transaction)."""
    data, seqs = batch(family, table, encoded, deleted)
    if not seqs:
        return
    if namespace:
        await call_in_namespace(namespace, lambda: _send(data, seqs))
    else:
        await asyncio.to_thread(_send, data, seqs)
