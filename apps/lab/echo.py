"""The lab's pod workload: ``python -m apps.lab.echo --name NS/POD --port 8080 [--port 53/udp ...]``.

It serves TCP and UDP on every port given (the pod manifest's ``containerPort`` values; 8080 when
the manifest declares none), and SCTP too on ports given as ``PORT/sctp`` when the kernel has it.
Every request - each chunk read from a TCP or SCTP connection, each UDP datagram - is answered
with one line::

    <namespace>/<pod> <client-ip>:<client-port>\\n

so a probe sees which backend answered and which source address that backend saw (a service's
SNAT, or the client's own address kept by ``externalTrafficPolicy: Local``). :func:`parse_reply`
turns such a line back into its parts.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from dataclasses import dataclass
from typing import cast

DEFAULT_PORT = 8080
PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class Reply:
    """One parsed answer of the echo workload."""

    pod: str  # "<namespace>/<pod>" of the backend that answered
    client_ip: str  # the source address the backend saw
    client_port: int


def format_reply(name: str, peer: tuple[str, int] | tuple[str, int, int, int]) -> bytes:
    """The answer line for a client at ``peer`` (a socket address)."""
    return f"{name} {peer[0]}:{peer[1]}\n".encode()


def parse_reply(data: bytes | str) -> Reply | None:
    """Parse one answer line; ``None`` when ``data`` is not an echo reply."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    parts = text.strip().split(" ")
    if len(parts) != 2 or "/" not in parts[0] or ":" not in parts[1]:
        return None
    ip, _, port = parts[1].rpartition(":")
    if not port.isdigit():
        return None
    return Reply(pod=parts[0], client_ip=ip.strip("[]"), client_port=int(port))


def parse_port(spec: str) -> tuple[int, str | None]:
    """``"8080"`` -> (8080, None): TCP and UDP; ``"9000/sctp"`` -> (9000, "sctp"): SCTP as well."""
    port_s, _, proto = spec.partition("/")
    proto = proto.lower() or ""
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ValueError(f"bad port {spec!r}: want 1-65535, optionally /tcp, /udp or /sctp")
    if proto and proto not in PROTOCOLS:
        raise ValueError(f"bad protocol in {spec!r}: want one of {', '.join(PROTOCOLS)}")
    return int(port_s), (proto if proto == "sctp" else None)


class _UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport does not subclass DatagramTransport, but is one.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(format_reply(self.name, addr), addr)


def _stream_handler(name: str):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        answer = format_reply(name, peer)
        try:
            while await reader.read(65536):
                writer.write(answer)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return handle


async def serve(ports: list[str], name: str) -> None:
    """Serve every port spec until cancelled."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    for spec in ports or [str(DEFAULT_PORT)]:
        port, only = parse_port(spec)
        if only == "sctp":
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("0.0.0.0", port))
                servers.append(await asyncio.start_server(_stream_handler(name), sock=sock))
            except OSError as err:
                print(f"echo: no SCTP on port {port}: {err}", file=sys.stderr, flush=True)
        servers.append(await asyncio.start_server(_stream_handler(name), "0.0.0.0", port, reuse_address=True))
        await loop.create_datagram_endpoint(lambda: _UDPEcho(name), local_addr=("0.0.0.0", port))
    print(f"echo {name}: serving {', '.join(ports or [str(DEFAULT_PORT)])}", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", action="append", default=[],
                        help="PORT (TCP and UDP) or PORT/sctp; repeatable; default 8080")
    parser.add_argument("--name", default="default/pod", help="NAMESPACE/POD, the first word of each answer")
    args = parser.parse_args()
    try:
        for spec in args.port:
            parse_port(spec)
    except ValueError as err:
        parser.error(str(err))
    asyncio.run(serve(args.port, args.name))


if __name__ == "__main__":
    main()
