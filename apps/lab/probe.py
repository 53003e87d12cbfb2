"""Run inside one pod's namespace: ping and TCP-echo every target, print JSON results.

``python -m apps.lab.probe --port 8080 10.1.1.2 10.1.2.2:9090 ...`` prints one JSON list of
``{"to": ip, "ping": bool, "tcp": bool, "tcp_from": "ns/pod", "seen_as": "ip:port"}``: a target
without ``:PORT`` is probed on ``--port``. ``tcp_from`` is the pod that answered (see
:mod:`apps.lab.echo`), ``seen_as`` the source address it saw. Targets are probed concurrently.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from apps.lab.echo import Reply, parse_reply


async def ping(ip: str, timeout_s: float) -> bool:
    proc = await asyncio.create_subprocess_exec(
        "ping", "-c", "1", "-W", str(max(1, int(timeout_s))), "-q", ip,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await proc.wait() == 0


async def tcp(ip: str, port: int, timeout_s: float) -> Reply | None:
    """One TCP request to the echo workload; its parsed answer, or ``None``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout_s)
        try:
            writer.write(b"probe")
            await writer.drain()
            data = await asyncio.wait_for(reader.readline(), timeout_s)
        finally:
            writer.close()
        return parse_reply(data)
    except (OSError, TimeoutError):
        return None


def split_target(target: str, default_port: int) -> tuple[str, int]:
    ip, sep, port = target.rpartition(":")
    if sep and port.isdigit() and "." in ip:
        return ip, int(port)
    return target, default_port


async def probe_all(targets: list[str], port: int, timeout_s: float) -> list[dict[str, object]]:
    async def one(target: str) -> dict[str, object]:
        ip, tport = split_target(target, port)
        ok_ping, answered = await asyncio.gather(ping(ip, timeout_s), tcp(ip, tport, timeout_s))
        return {"to": ip, "port": tport, "ping": ok_ping, "tcp": answered is not None,
                "tcp_from": answered.pod if answered else None,
                "seen_as": f"{answered.client_ip}:{answered.client_port}" if answered else None}

    return list(await asyncio.gather(*(one(t) for t in targets)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(probe_all(args.targets, args.port, args.timeout))))


if __name__ == "__main__":
    main()
