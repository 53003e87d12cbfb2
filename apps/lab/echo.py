"""The lab's pod workload: a TCP and UDP echo server (``python -m apps.lab.echo --port 8080``).

Each TCP connection gets back what it sent, prefixed with the pod's name, so a probe can tell
which pod answered (that matters once services load-balance).
"""

from __future__ import annotations

import argparse
import asyncio


class _UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.name + b":" + data, addr)


async def serve(port: int, name: str) -> None:
    prefix = name.encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(prefix + b":" + data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _UDPEcho(prefix), local_addr=("0.0.0.0", port))
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--name", default="pod")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.name))


if __name__ == "__main__":
    main()
