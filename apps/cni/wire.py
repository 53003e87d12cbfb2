"""A minimal gRPC client (HTTP/2 prior knowledge, one unary call) and the CNI messages' codec.

``contiv-cni`` runs once per pod operation; importing grpcio and the generated protobuf module
costs many times everything else the binary does (measured in docs/cni.md). This module speaks just
enough of the wire formats (RFC 7540 framing, RFC 7541 literal header fields, the protobuf
encoding of ``cni.proto``) to make one call with the standard library. The messages must stay
in step with ``plugins/podmanager/cni.proto``; tests compare both ways with the generated code.
"""

from __future__ import annotations

import _socket
import struct
import time
from types import SimpleNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from socket import socket as Socket
    from typing import Any

# ---- protobuf ---------------------------------------------------------------------------

#: CNIRequest field numbers (all strings).
REQUEST_FIELDS = {
    "version": 1, "container_id": 2, "network_namespace": 3, "interface_name": 4,
    "extra_nw_config": 5, "extra_arguments": 6, "ipam_type": 7, "ipam_data": 8,
}
# Reply schema: message -> field number -> (attribute, kind); kind "u" varint, "s" string,
# "s*" repeated string, or the name of a nested message ("*" suffix: repeated).
_SCHEMA: dict[str, dict[int, tuple[str, str]]] = {
    "CNIReply": {1: ("result", "u"), 2: ("error", "s"), 4: ("interfaces", "Interface*"),
                 5: ("routes", "Route*"), 6: ("dns", "DNS*"), 7: ("error_details", "s")},
    "Interface": {1: ("name", "s"), 2: ("mac", "s"), 3: ("sandbox", "s"),
                  4: ("ip_addresses", "IP*")},
    "IP": {1: ("version", "u"), 2: ("address", "s"), 3: ("gateway", "s")},
    "Route": {1: ("dst", "s"), 2: ("gw", "s")},
    "DNS": {1: ("domain", "s"), 2: ("nameservers", "s*"), 3: ("search", "s*"),
            4: ("options", "s*")},
}


class WireError(Exception):
    """The peer sent bytes this codec cannot read, or broke the protocol."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_request(**fields: str) -> bytes:
    """A serialized ``CNIRequest`` (proto3: empty strings are omitted)."""
    out = bytearray()
    for name, value in fields.items():
        number = REQUEST_FIELDS[name]
        if value:
            data = value.encode()
            out += _varint(number << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or oversized varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode_message(data: bytes, message: str = "CNIReply") -> Any:
    """Decode a message of the reply schema into attributes with proto3 defaults."""
    schema = _SCHEMA[message]
    obj = SimpleNamespace()
    for attr, kind in schema.values():
        setattr(obj, attr, [] if kind.endswith("*") else 0 if kind == "u" else "")
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
            if number in schema and schema[number][1] == "u":
                setattr(obj, schema[number][0], value)
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            chunk, pos = data[pos:pos + length], pos + length
            if len(chunk) != length:
                raise WireError("truncated length-delimited field")
            if number not in schema:
                continue
            attr, kind = schema[number]
            if kind == "s":
                setattr(obj, attr, chunk.decode())
            elif kind == "s*":
                getattr(obj, attr).append(chunk.decode())
            elif kind.endswith("*"):
                getattr(obj, attr).append(decode_message(chunk, kind[:-1]))
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise WireError(f"unsupported protobuf wire type {wire_type}")
    if pos != len(data):
        raise WireError("truncated fixed-width field")
    return obj


# ---- HTTP/2 + gRPC ----------------------------------------------------------------------

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
_CONTINUATION = 0x9
_WINDOW_UPDATE = 0x8
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
#: gRPC status codes by number (for messages).
_GRPC_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)
_MAX_FRAME = 16384
_OUR_WINDOW = 1 << 24
_STREAM = 1


class CallError(Exception):
    """The call failed: ``unavailable`` is True when the agent could not be reached in time;
    ``status`` is the gRPC status code the agent answered with (None when it sent none)."""

    def __init__(self, message: str, unavailable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.unavailable = unavailable
        self.status = status


def _header_block(kind: int, flags: int, payload: bytes) -> bytes:
    """The header block fragment of a HEADERS (padding, priority removed) or CONTINUATION frame."""
    if kind == _HEADERS:
        if flags & _PADDED:
            payload = payload[1:len(payload) - payload[0]]
        if flags & _PRIORITY:
            payload = payload[5:]
    return payload


def _status_error(blocks: list[bytes]) -> CallError:
    """The error the agent's trailers carry (``grpc-status``, ``grpc-message``).

    Only on this (rare) path is HPACK decoded, with the ``hpack`` package: importing it costs
    more than a successful call needs. Every header block of the stream is decoded in order,
    since they share the decoder's dynamic table.
    """
    from urllib.parse import unquote

    import hpack  # deliberately lazy, see above

    decoder = hpack.Decoder()
    headers: dict[str, str] = {}
    try:
        for block in blocks:
            for key, value in decoder.decode(block, raw=True):
                headers[bytes(key).decode("latin-1")] = bytes(value).decode("utf-8", "replace")
    except hpack.HPACKError as exc:
        raise WireError(f"undecodable response headers: {exc}") from exc
    code_text = headers.get("grpc-status")
    if code_text is None:
        return CallError("the agent ended the call without a reply or a gRPC status", False)
    try:
        code = int(code_text)
    except ValueError:
        raise WireError(f"bad grpc-status {code_text!r}") from None
    code_name = _GRPC_CODES[code] if 0 <= code < len(_GRPC_CODES) else "UNKNOWN"
    message = unquote(headers.get("grpc-message", ""))  # percent-encoded (gRPC HTTP/2 spec)
    detail = f": {message}" if message else ""
    return CallError(f"gRPC status {code} ({code_name}){detail}", unavailable=code == 14, status=code)


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(
        ">I", stream
    ) + payload


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _hpack_literal(name: str, value: str) -> bytes:
    """A literal header field without indexing, new name, no Huffman coding (RFC 7541 6.2.2)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v


def _request_headers(path: str, authority: str, timeout_s: float) -> bytes:
    fields = (
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
        ("content-type", "application/grpc"), ("te", "trailers"),
        ("grpc-timeout", f"{max(1, int(timeout_s * 1000))}m"), ("user-agent", "contiv-cni"),
    )
    return b"".join(_hpack_literal(name, value) for name, value in fields)


def _connect(target: str, timeout_s: float) -> Socket:
    # _socket, not socket: the latter imports enum, selectors... (~10 ms of the binary's start).
    if target.startswith("unix:"):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(target[len("unix:"):])
        except BaseException:
            sock.close()
            raise
        return sock  # type: ignore[return-value]  # the C socket has what we use
    import socket  # host:port (resolution, IPv4/IPv6 fallback): not the usual path

    host, _, port = target.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)


def unary_call(target: str, path: str, request: bytes, timeout_s: float) -> bytes:
    """Send one gRPC request to ``target`` (``unix:/path`` or ``host:port``); the reply bytes.

    A request of any size is sent within HTTP/2 flow control: DATA frames never exceed the
    agent's SETTINGS_MAX_FRAME_SIZE nor the connection's and the stream's send windows, which
    grow with the agent's WINDOW_UPDATE frames (read, with everything else it sends, while the
    request goes out).
    """
    deadline = time.monotonic() + timeout_s
    try:
        sock = _connect(target, timeout_s)
    except OSError as exc:
        raise CallError(f"cannot connect: {exc.strerror or exc}", unavailable=True) from exc
    call = _Call(sock, deadline)
    try:
        body = b"\x00" + struct.pack(">I", len(request)) + request
        out = bytearray(_PREFACE)
        out += _frame(_SETTINGS, 0, 0, struct.pack(">HI", 0x4, _OUR_WINDOW))
        out += _frame(_WINDOW_UPDATE, 0, 0, struct.pack(">I", _OUR_WINDOW - 65535))
        authority = "localhost" if target.startswith("unix:") else target
        out += _frame(_HEADERS, _END_HEADERS, _STREAM, _request_headers(path, authority, timeout_s))
        sock.sendall(out)
        call.send_body(body)
        return call.read_reply()
    except TimeoutError as exc:
        raise CallError(f"no answer within {timeout_s:g} s", unavailable=True) from exc
    except OSError as exc:
        raise CallError(f"connection failed: {exc.strerror or exc}", unavailable=True) from exc
    finally:
        sock.close()


class _Call:
    """One stream on one connection: frames in, the request body out under flow control."""

    def __init__(self, sock: Socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()
        self.data = bytearray()
        self.blocks: list[bytes] = []  # header blocks of our stream (response headers, trailers)
        self.ended = False  # the agent ended our stream
        # What we may send: RFC 7540 6.9 (windows), 6.5.2 (the agent's settings).
        self.conn_window = 65535
        self.stream_window = 65535
        self.initial_window = 65535
        self.max_frame = _MAX_FRAME

    def send_body(self, body: bytes) -> None:
        sent = 0
        while sent < len(body):
            if self.ended:
                return  # the agent answered (an error) before taking the whole request
            room = min(self.conn_window, self.stream_window, self.max_frame, len(body) - sent)
            if room <= 0:
                self._read_frame()  # wait for WINDOW_UPDATE (or SETTINGS, or the answer)
                continue
            last = sent + room >= len(body)
            self.sock.sendall(_frame(_DATA, _END_STREAM if last else 0, _STREAM,
                                     body[sent:sent + room]))
            sent += room
            self.conn_window -= room
            self.stream_window -= room

    def _need(self, size: int) -> None:
        while len(self.buf) < size:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CallError("the agent closed the connection", unavailable=True)
            self.buf.extend(chunk)

    def _read_frame(self) -> bool:
        """Read and handle one frame; True when our stream's last frame has arrived."""
        buf = self.buf
        self._need(9)
        length = int.from_bytes(buf[0:3], "big")
        kind, flags = buf[3], buf[4]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        self._need(9 + length)
        payload = bytes(buf[9:9 + length])
        del buf[:9 + length]
        if kind == _SETTINGS and not flags & _ACK:
            self._settings(payload)
            self.sock.sendall(_frame(_SETTINGS, _ACK, 0))
        elif kind == _WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if stream == 0:
                self.conn_window += increment
            elif stream == _STREAM:
                self.stream_window += increment
        elif kind == _PING and not flags & _ACK:
            self.sock.sendall(_frame(_PING, _ACK, 0, payload))
        elif kind == _GOAWAY:
            raise CallError("the agent is going away", unavailable=True)
        elif kind == _RST_STREAM and stream == _STREAM:
            code = int.from_bytes(payload[:4], "big")
            raise CallError(f"the agent reset the call (HTTP/2 error {code})", unavailable=False)
        elif kind == _DATA and stream == _STREAM:
            if flags & _PADDED:
                payload = payload[1:len(payload) - payload[0]]
            self.data += payload
        elif kind == _HEADERS and stream == _STREAM:
            self.blocks.append(_header_block(kind, flags, payload))
        elif kind == _CONTINUATION and stream == _STREAM and self.blocks:
            self.blocks[-1] += payload
        if stream == _STREAM and kind in (_DATA, _HEADERS) and flags & _END_STREAM:
            self.ended = True
        return self.ended and (kind == _DATA or bool(flags & _END_HEADERS))

    def _settings(self, payload: bytes) -> None:
        for pos in range(0, len(payload) - 5, 6):
            ident, value = struct.unpack(">HI", payload[pos:pos + 6])
            if ident == 0x4:  # SETTINGS_INITIAL_WINDOW_SIZE: applies to open streams too
                self.stream_window += value - self.initial_window
                self.initial_window = value
            elif ident == 0x5:  # SETTINGS_MAX_FRAME_SIZE
                self.max_frame = value

    def read_reply(self) -> bytes:
        while not self._read_frame():
            pass
        data = self.data
        if len(data) < 5:
            # Trailers only: the agent answered with a gRPC error status instead of a reply.
            raise _status_error(self.blocks)
        if data[0] != 0:
            raise WireError("compressed gRPC messages are not supported")
        size = int.from_bytes(data[1:5], "big")
        if len(data) != 5 + size:
            raise WireError(f"reply framing: {len(data) - 5} bytes for a {size}-byte message")
        return bytes(data[5:])
