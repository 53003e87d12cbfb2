"""The binary's standard-library gRPC client and codec, against grpcio and the generated code."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.cni.wire import (
    REQUEST_FIELDS,
    CallError,
    WireError,
    decode_message,
    encode_request,
    unary_call,
)
from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest

text = st.text(max_size=300)


@given(st.fixed_dictionaries({name: text for name in REQUEST_FIELDS}))
def test_request_encoding_matches_generated_code(fields: dict[str, str]) -> None:
    assert CNIRequest.FromString(encode_request(**fields)) == CNIRequest(**fields)


ip = st.builds(dict, version=st.sampled_from([0, 1]), address=text, gateway=text)
iface = st.builds(dict, name=text, mac=text, sandbox=text, ip_addresses=st.lists(ip, max_size=3))
route = st.builds(dict, dst=text, gw=text)
dns = st.builds(dict, domain=text, nameservers=st.lists(text, max_size=3),
                search=st.lists(text, max_size=2), options=st.lists(text, max_size=2))


def as_dict(obj: Any) -> Any:
    if isinstance(obj, list):
        return [as_dict(item) for item in obj]
    if hasattr(obj, "__dict__"):
        return {k: as_dict(v) for k, v in vars(obj).items()}
    return obj


@given(st.builds(dict, result=st.integers(0, 2**32 - 1), error=text, error_details=text,
                 interfaces=st.lists(iface, max_size=3), routes=st.lists(route, max_size=3),
                 dns=st.lists(dns, max_size=1)))
def test_reply_decoding_matches_generated_code(reply: dict[str, Any]) -> None:
    decoded = as_dict(decode_message(CNIReply(**reply).SerializeToString()))
    assert decoded == reply


def test_decoder_skips_unknown_fields_and_rejects_truncation() -> None:
    # field 15 varint, field 14 fixed64, field 13 fixed32, then result=7
    data = bytes([15 << 3, 1, 14 << 3 | 1, *b"12345678", 13 << 3 | 5, *b"1234", 1 << 3, 7])
    assert decode_message(data).result == 7
    with pytest.raises(WireError):
        decode_message(bytes([2 << 3 | 2, 10, 65]))
    with pytest.raises(WireError):
        decode_message(bytes([1 << 3, 0x80]))


class Echo:
    """A grpcio server answering Add with a reply that echoes the request; a container ID
    ``fail:<code>:<message>`` makes it abort the call with that gRPC status and message."""

    async def add(self, request: CNIRequest, context: Any) -> CNIReply:
        if request.container_id.startswith("fail:"):
            _, code, message = request.container_id.split(":", 2)
            await context.abort(grpc.StatusCode[code], message)
        reply = CNIReply(result=0, error=request.container_id)
        reply.interfaces.add(name=request.interface_name, sandbox=request.extra_nw_config)
        return reply


@pytest.fixture
async def echo_server(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20),
                                      ("grpc.max_send_message_length", 64 << 20)])
    handler = grpc.unary_unary_rpc_method_handler(
        Echo().add, request_deserializer=CNIRequest.FromString,
        response_serializer=CNIReply.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("contiv.cni.RemoteCNI", {"Add": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    sock = tmp_path / "echo.sock"
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", f"unix:{sock}"
    finally:
        await server.stop(0)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
# One frame, several frames, past the 64 KiB initial window, 5 MB (flow control).
@pytest.mark.parametrize("size", [10, 20_000, 60_000, 200_000, 5_000_000])
async def test_call_against_grpcio(
    echo_server: tuple[str, str], transport: str, size: int
) -> None:
    target = echo_server[0] if transport == "tcp" else echo_server[1]
    config = "x" * size
    raw = await asyncio.to_thread(
        unary_call, target, "/contiv.cni.RemoteCNI/Add",
        encode_request(container_id="c1", interface_name="eth0", extra_nw_config=config), 60.0,
    )
    reply = decode_message(raw)
    assert reply.error == "c1"
    assert reply.interfaces[0].name == "eth0" and reply.interfaces[0].sandbox == config


async def test_call_errors(echo_server: tuple[str, str], tmp_path: Path) -> None:
    tcp, _ = echo_server
    with pytest.raises(CallError) as err:  # trailers-only answer: UNIMPLEMENTED
        await asyncio.to_thread(unary_call, tcp, "/contiv.cni.RemoteCNI/Nope", b"", 10.0)
    assert not err.value.unavailable and err.value.status == 12
    assert "gRPC status 12 (UNIMPLEMENTED)" in str(err.value)
    with pytest.raises(CallError) as err:
        await asyncio.to_thread(unary_call, f"unix:{tmp_path}/none.sock", "/x/Y", b"", 1.0)
    assert err.value.unavailable


def test_silent_peer_times_out_and_closing_peer_is_unavailable(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = tmp_path / "silent.sock"
    listener.bind(str(path))
    listener.listen(1)
    try:
        with pytest.raises(CallError, match="no answer within") as err:
            unary_call(f"unix:{path}", "/x/Y", b"", 0.3)
        assert err.value.unavailable
    finally:
        listener.close()


@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_an_agent_side_grpc_error_keeps_its_message(
    echo_server: tuple[str, str], transport: str
) -> None:
    """The trailers (grpc-status, grpc-message) are decoded: the runtime sees why."""
    target = echo_server[0] if transport == "tcp" else echo_server[1]
    message = "pod default/web: no free IP in 10.1.1.0/24 (100% used, caf\u00e9)"  # percent-encoded on the wire
    with pytest.raises(CallError) as err:
        await asyncio.to_thread(
            unary_call, target, "/contiv.cni.RemoteCNI/Add",
            encode_request(container_id=f"fail:RESOURCE_EXHAUSTED:{message}"), 10.0,
        )
    assert err.value.status == 8 and not err.value.unavailable
    assert str(err.value) == f"gRPC status 8 (RESOURCE_EXHAUSTED): {message}"
    with pytest.raises(CallError) as err:
        await asyncio.to_thread(
            unary_call, target, "/contiv.cni.RemoteCNI/Add",
            encode_request(container_id="fail:UNAVAILABLE:shutting down"), 10.0,
        )
    assert err.value.status == 14 and err.value.unavailable
    assert "shutting down" in str(err.value)
