"""The ``RemoteCNI`` gRPC service on an owner-only unix socket (grpc.aio)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import grpc

from core.unixsocket import bind_owner_only, prepare_socket_path
from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest

SERVICE_NAME = "contiv.cni.RemoteCNI"


#: Largest request (or reply) the service takes: network configurations of many megabytes
#: (gRPC's default limit is 4 MiB) pass.
MAX_MESSAGE_BYTES = 64 << 20

class CNIHandler(Protocol):
    """What serves the three RPCs."""

    async def add(self, request: CNIRequest) -> CNIReply: ...

    async def delete(self, request: CNIRequest) -> CNIReply: ...

    async def check(self, request: CNIRequest) -> CNIReply: ...


def _rpc(
    call: Callable[[CNIRequest], Awaitable[CNIReply]],
) -> grpc.RpcMethodHandler[CNIRequest, CNIReply]:
    async def behaviour(request: CNIRequest, context: Any) -> CNIReply:
        return await call(request)

    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=CNIRequest.FromString,
        response_serializer=CNIReply.SerializeToString,
    )


class RemoteCNIServer:
    """Serves a :class:`CNIHandler` on ``socket_path`` with permissions 0600."""

    def __init__(self, socket_path: str, handler: CNIHandler, log: logging.Logger) -> None:
        self.socket_path = Path(socket_path)
        self.handler = handler
        self.log = log
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        prepare_socket_path(self.socket_path)
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ])
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE_NAME,
                    {
                        "Add": _rpc(self.handler.add),
                        "Delete": _rpc(self.handler.delete),
                        "Check": _rpc(self.handler.check),
                    },
                ),
            )
        )
        bind_owner_only(self.socket_path, lambda address: server.add_insecure_port(f"unix:{address}"))
        await server.start()
        self._server = server
        self.log.info("RemoteCNI serving on %s", self.socket_path)

    async def stop(self, grace_s: float = 2.0) -> None:
        if self._server is None:
            return
        await self._server.stop(grace_s)
        self._server = None
        self.socket_path.unlink(missing_ok=True)
