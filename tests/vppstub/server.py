"""The stand-in's socket server: framing, handshake, dispatch, failure injection, restarts."""

from __future__ import annotations

import collections
import itertools
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.vppstub import acl, cnat, hosttap, interfaces, l2, l3, nat, stn
from tests.vppstub.codec import (
    SOCKCLNT_CREATE_ID,
    MessageCatalog,
    load_catalog,
    repo_api_dir,
)
from tests.vppstub.errors import ApiError
from tests.vppstub.interfaces import Options
from tests.vppstub.state import VPPState

log = logging.getLogger("vppstub")
FRAME = struct.Struct(">QII")
UNIMPLEMENTED = -9
VERSION = "26.10-rc0~stub"
Handler = Callable[[VPPState, Options, Any], Any]
HANDLERS: dict[str, Handler] = {
    **interfaces.HANDLERS, **l3.HANDLERS, **l2.HANDLERS, **acl.HANDLERS, **stn.HANDLERS, **nat.HANDLERS,
    **cnat.HANDLERS,
}
_pids = itertools.count(4000)


def default_api_dir() -> str:
    """The API definitions shipped in the package (``plugins/vpp/api``)."""
    return str(repo_api_dir())


class VPPStub:
    """A VPP binary-API server on ``socket_path`` that keeps state in memory.

    ``fail_next(message, retval)`` makes the next call(s) of a message fail; ``restart()`` drops
    every client and all state, as a VPP restart does (the new incarnation has a new PID, which
    ``control_ping_reply.vpe_pid`` reports). ``calls`` counts requests per message name.
    """

    def __init__(
        self,
        socket_path: str | Path,
        *,
        api_dir: str | None = None,
        options: Options | None = None,
    ) -> None:
        self.socket_path = str(socket_path)
        self.catalog: MessageCatalog = load_catalog(api_dir or default_api_dir())
        self.options = options or Options()
        self.state = VPPState()
        self.pid = next(_pids)
        self.calls: collections.Counter[str] = collections.Counter()
        self._failures: dict[str, list[int]] = {}
        self._lock = threading.RLock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._client_ids = itertools.count(1)
        self._accept_thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------- control

    def start(self) -> VPPStub:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        listener.listen(16)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every client (VPP gone)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=2)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def remove_host_taps(self) -> None:
        """Delete the real Linux taps made for TAPs (VPP's exit takes them along)."""
        for iface in list(self.state.interfaces.values()):
            if iface.link.get("real"):
                hosttap.delete(iface.link["host_namespace"], iface.link["host_if_name"])
                iface.link["real"] = False

    def restart(self, *, start: bool = True) -> None:
        """VPP restarts: clients are dropped, all state is lost, a new PID is reported."""
        self.stop()
        self.remove_host_taps()
        with self._lock:
            self.state = VPPState()
            self.pid = next(_pids)
            self._failures.clear()
        if start:
            self.start()

    def fail_next(self, message: str, retval: int = -1, times: int = 1) -> None:
        """Make the next ``times`` calls of ``message`` fail with ``retval`` (no state change)."""
        if message not in self.catalog.messages:
            raise ValueError(f"unknown VPP message {message!r}")
        with self._lock:
            self._failures.setdefault(message, []).extend([retval] * times)

    def mutating_calls(self) -> dict[str, int]:
        """Calls that change state (everything but dumps, pings, version, handshake and the CLI,
        of which the stand-in answers only ``show`` commands)."""
        skip = (
            "cli_inband",
            "_dump",
            "control_ping",
            "show_version",
            "sockclnt_",
            "_get",
            "show_running_config",
        )
        return {m: n for m, n in self.calls.items() if not any(s in m for s in skip)}

    # ---------------------------------------------------------------------------------- wire

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_exact(conn: socket.socket, size: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < size:
            chunk = conn.recv(size - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _send(self, conn: socket.socket, name: str, fields: dict[str, Any]) -> None:
        payload = self.catalog.pack(name, fields)
        conn.sendall(FRAME.pack(0, len(payload), 0) + payload)

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                header = self._read_exact(conn, FRAME.size)
                if header is None:
                    return
                _, length, _ = FRAME.unpack(header)
                payload = self._read_exact(conn, length)
                if payload is None:
                    return
                if not self._dispatch(conn, payload):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _dispatch(self, conn: socket.socket, payload: bytes) -> bool:
        (msg_id,) = struct.unpack_from(">H", payload)
        name = self.catalog.name_by_id.get(msg_id)
        if name is None:
            log.warning("unknown message id %d", msg_id)
            return False
        req, _ = self.catalog.messages[name].unpack(payload)
        self.calls[name] += 1
        if msg_id == SOCKCLNT_CREATE_ID:
            table = self.catalog.table()
            self._send(
                conn,
                "sockclnt_create_reply",
                {
                    "context": req.context,
                    "response": 0,
                    "index": next(self._client_ids),
                    "count": len(table),
                    "message_table": table,
                },
            )
            return True
        ctx = req.context
        if name == "sockclnt_delete":
            self._send(conn, "sockclnt_delete_reply", {"context": ctx, "response": 0})
            return False
        if name == "control_ping":
            self._send(
                conn,
                "control_ping_reply",
                {"context": ctx, "retval": 0, "vpe_pid": self.pid},
            )
            return True
        if name == "show_version":
            self._send(
                conn,
                "show_version_reply",
                {"context": ctx, "retval": 0, "program": "vpe", "version": VERSION},
            )
            return True
        service = self.catalog.services.get(name, {})
        reply_name = service.get("reply", name + "_reply")
        with self._lock:
            failures = self._failures.get(name)
            injected = failures.pop(0) if failures else None
            handler = HANDLERS.get(name)
            if "stream_msg" in service:  # "modern" stream: details, then the reply with a cursor
                details = handler(self.state, self.options, req) if handler else []
                for item in details:
                    self._send(conn, service["stream_msg"], {"context": ctx, **item})
                self._send(conn, reply_name, {"context": ctx, "retval": 0, "cursor": 0xFFFFFFFF})
                return True
            if "stream" in service:
                details = handler(self.state, self.options, req) if handler else []
                for item in details:
                    self._send(conn, reply_name, {"context": ctx, **item})
                return True
            if injected is not None:
                result: dict[str, Any] = {"retval": injected}
            elif handler is None:
                result = {"retval": UNIMPLEMENTED}
            else:
                try:
                    result = handler(self.state, self.options, req)
                except ApiError as err:
                    log.info("%s rejected: %s", name, err)
                    result = {"retval": err.retval}
        self._send(conn, reply_name, {"context": ctx, **result})
        return True
