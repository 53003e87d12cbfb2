"""Run inside a pod's or node's namespace: connect N times to each target, count who answered.

``python -m apps.lab.svcprobe --count 10 tcp:10.96.0.10:80 udp:10.96.0.10:53 ...`` prints one JSON
object ``{target: {"answers": {"ns/pod": n}, "failed": k, "errors": {"ECONNREFUSED": k, ...},
"seen_as": [ip, ...]}}`` (errors by errno name, or ``timeout``).
Each TCP attempt is a new connection (a new source port), each UDP attempt a new socket, so
every attempt is a fresh load-balancing decision. SCTP targets use one-to-one SCTP sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import socket
from collections import Counter
from typing import Any

from apps.lab.echo import parse_reply


async def _stream(ip: str, port: int, timeout_s: float, sctp: bool) -> bytes:
    sock = None
    if sctp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (ip, port)), timeout_s)
        reader, writer = await asyncio.open_connection(sock=sock)
    else:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout_s)
    try:
        writer.write(b"probe")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout_s)
    finally:
        writer.close()


async def _udp(ip: str, port: int, timeout_s: float) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if not got.done():
                got.set_result(data)

        def error_received(self, exc: Exception) -> None:
            if not got.done():
                got.set_exception(exc)

    transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=(ip, port))
    try:
        transport.sendto(b"probe")
        return await asyncio.wait_for(got, timeout_s)
    finally:
        transport.close()


async def probe(target: str, count: int, timeout_s: float) -> dict[str, Any]:
    proto, ip, port_s = target.split(":")
    answers: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    seen: set[str] = set()
    for _ in range(count):
        try:
            if proto == "udp":
                data = await _udp(ip, int(port_s), timeout_s)
            else:
                data = await _stream(ip, int(port_s), timeout_s, proto == "sctp")
        except TimeoutError:
            errors["timeout"] += 1
            continue
        except OSError as exc:
            errors[errno.errorcode.get(exc.errno or 0, type(exc).__name__)] += 1
            continue
        reply = parse_reply(data)
        if reply is None:
            errors["bad reply"] += 1
            continue
        answers[reply.pod] += 1
        seen.add(reply.client_ip)
    return {"answers": dict(answers), "failed": sum(errors.values()), "errors": dict(errors),
            "seen_as": sorted(seen)}


async def probe_all(targets: list[str], count: int, timeout_s: float) -> dict[str, Any]:
    results = await asyncio.gather(*(probe(t, count, timeout_s) for t in targets))
    return dict(zip(targets, results, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help="PROTO:IP:PORT (tcp, udp, sctp)")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(probe_all(args.targets, args.count, args.timeout))))


if __name__ == "__main__":
    main()
