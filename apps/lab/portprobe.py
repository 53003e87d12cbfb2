"""One request per target ``IP:PORT/PROTO`` to the echo workload, all concurrently.

As a command, run inside one pod's namespace: ``python -m apps.lab.portprobe --timeout 1
10.1.1.2:80/tcp 10.1.1.2:80/udp ...`` prints ``[{"target": "10.1.1.2:80/tcp", "ok": true,
"pod": "x/a"}, ...]``. As a library (:func:`probe_one` with ``make_socket``), the caller makes
each socket wherever it wants, e.g. inside another pod's namespace, so one process probes from
every pod at once. ``ok``: the echo workload answered (TCP/SCTP connect + reply, a UDP reply)
within the timeout; ``pod`` is who answered. A failed probe is tried once more (a lost datagram
on a loaded machine is not a denied one), so a run takes at most about two timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import Callable

from apps.lab.echo import parse_reply

#: Makes a socket of (type, proto) for one probe.
SocketFactory = Callable[[int, int], socket.socket]


def local_socket(kind: int, proto: int) -> socket.socket:
    return socket.socket(socket.AF_INET, kind, proto)


async def _stream(ip: str, port: int, timeout_s: float, sctp: bool, make: SocketFactory) -> str | None:
    loop = asyncio.get_running_loop()
    try:
        sock = make(socket.SOCK_STREAM, socket.IPPROTO_SCTP if sctp else 0)
    except OSError:
        return None
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout_s)
        await loop.sock_sendall(sock, b"probe")
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout_s)
    except (OSError, TimeoutError):
        return None
    finally:
        sock.close()
    reply = parse_reply(data)
    return reply.pod if reply else None


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)


async def _udp(ip: str, port: int, timeout_s: float, make: SocketFactory) -> str | None:
    loop = asyncio.get_running_loop()
    try:
        sock = make(socket.SOCK_DGRAM, 0)
        sock.setblocking(False)
        sock.connect((ip, port))
        transport, proto = await loop.create_datagram_endpoint(_Datagram, sock=sock)
    except OSError:
        return None
    try:
        transport.sendto(b"probe")
        data = await asyncio.wait_for(proto.reply, timeout_s)
    except (OSError, TimeoutError):
        return None
    finally:
        transport.close()
    reply = parse_reply(data)
    return reply.pod if reply else None


async def probe_one(target: str, timeout_s: float, attempts: int = 2,
                    make_socket: SocketFactory = local_socket) -> dict[str, object]:
    address, _, proto = target.partition("/")
    ip, _, port_s = address.rpartition(":")
    port = int(port_s)
    for _ in range(attempts):
        if proto == "udp":
            pod = await _udp(ip, port, timeout_s, make_socket)
        else:
            pod = await _stream(ip, port, timeout_s, proto == "sctp", make_socket)
        if pod is not None:
            return {"target": target, "ok": True, "pod": pod}
    return {"target": target, "ok": False, "pod": None}


async def probe_all(targets: list[str], timeout_s: float) -> list[dict[str, object]]:
    return list(await asyncio.gather(*(probe_one(t, timeout_s) for t in targets)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help="IP:PORT/PROTO (tcp, udp or sctp)")
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(probe_all(args.targets, args.timeout))))


if __name__ == "__main__":
    main()
