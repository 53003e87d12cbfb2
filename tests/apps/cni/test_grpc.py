"""The Go binary's gRPC call against a grpcio server: its hand-made protobuf request as the
generated code reads it, messages of any size over TCP and unix sockets, the agent's reply
printed as is, and gRPC errors (trailers) reported to the runtime with their status."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest
from plugins.podmanager.cnicodes import CNICode
from tests.apps.cni.helpers import exec_cni

ENV = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
       "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p\u00e9"}


class Echo:
    """Answers with ``output`` describing the request it decoded; a container ID
    ``fail:<code>:<message>`` aborts the call with that gRPC status and message."""

    def __init__(self) -> None:
        self.requests: list[CNIRequest] = []

    async def add(self, request: CNIRequest, context: Any) -> CNIReply:
        self.requests.append(request)
        if request.container_id.startswith("fail:"):
            _, code, message = request.container_id.split(":", 2)
            await context.abort(grpc.StatusCode[code], message)
        seen = {
            "version": request.version, "container_id": request.container_id,
            "netns": request.network_namespace, "ifname": request.interface_name,
            "args": request.extra_arguments, "cni_path": request.cni_path,
            "cni_invocation": request.cni_invocation,
            "config_sha256": hashlib.sha256(request.extra_nw_config.encode()).hexdigest(),
        }
        return CNIReply(result=0, output=json.dumps(seen))


@pytest.fixture
async def echo(tmp_path: Path) -> AsyncIterator[tuple[Echo, str, str]]:
    """A grpcio server with only ``Add``, on TCP and on a unix socket."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    servicer = Echo()
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.add, request_deserializer=CNIRequest.FromString,
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
        yield servicer, f"127.0.0.1:{port}", str(sock)
    finally:
        await server.stop(0)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
# One frame, several frames, past the 64 KiB initial window, 5 MB (flow control).
@pytest.mark.parametrize("size", [10, 20_000, 200_000, 5_000_000])
async def test_request_reaches_grpcio_intact(
    cni_bin: Path, echo: tuple[Echo, str, str], transport: str, size: int
) -> None:
    servicer, tcp, unix = echo
    server = tcp if transport == "tcp" else unix
    stdin = json.dumps({"cniVersion": "0.4.0", "name": "n", "grpcServer": server,
                        "pad": "x\u00e9" * (size // 2)}).encode()
    out = await exec_cni(cni_bin, "ADD", stdin, ENV)
    assert out.status == 0, (out.output, out.stderr)
    assert out.output == {
        "version": "0.4.0", "container_id": "c1", "netns": "/proc/self/ns/net", "ifname": "eth0",
        "args": ENV["CNI_ARGS"], "cni_path": str(cni_bin), "cni_invocation": True,
        "config_sha256": hashlib.sha256(stdin).hexdigest(),
    }
    assert len(servicer.requests) == 1


@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_grpc_errors_reach_the_runtime_with_their_status(
    cni_bin: Path, echo: tuple[Echo, str, str], transport: str
) -> None:
    _, tcp, unix = echo
    server = tcp if transport == "tcp" else unix
    conf = {"cniVersion": "1.0.0", "name": "n", "grpcServer": server}
    # grpc-message is percent-encoded on the wire; the runtime sees it decoded.
    message = "pod default/web: no free IP in 10.1.1.0/24 (100% used, caf\u00e9)"
    out = await exec_cni(cni_bin, "ADD", conf,
                         {**ENV, "CNI_CONTAINERID": f"fail:RESOURCE_EXHAUSTED:{message}"})
    assert out.status == 1
    assert out.output["code"] == CNICode.INTERNAL
    assert out.output["msg"].endswith(f"gRPC status 8 (RESOURCE_EXHAUSTED): {message}")
    out = await exec_cni(cni_bin, "ADD", conf,
                         {**ENV, "CNI_CONTAINERID": "fail:UNAVAILABLE:shutting down"})
    assert out.status == 1 and out.output["code"] == CNICode.TRY_AGAIN_LATER
    assert "shutting down" in out.output["msg"] and server in out.output["msg"]
    # A trailers-only answer (no such method): the status comes in the headers.
    out = await exec_cni(cni_bin, "DEL", conf, ENV)
    assert out.status == 1 and out.output["code"] == CNICode.INTERNAL
    assert "gRPC status 12 (UNIMPLEMENTED)" in out.output["msg"]


async def test_invalid_utf8_never_reaches_the_agent(
    cni_bin: Path, echo: tuple[Echo, str, str]
) -> None:
    """protobuf strings must be UTF-8: the binary names what is not."""
    servicer, _, unix = echo
    out = await exec_cni(cni_bin, "ADD", b'{"cniVersion": "1.0.0", "name": "\xff", "grpcServer": "'
                         + unix.encode() + b'"}', ENV)
    assert out.status == 1 and out.output["code"] == CNICode.DECODE_FAILURE
    assert "not valid UTF-8" in out.output["msg"]
    assert servicer.requests == []
