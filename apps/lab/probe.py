"""Run inside one pod's namespace: ping and TCP-echo every target, print JSON results.

``python -m apps.lab.probe --port 8080 10.1.1.2 10.1.2.2 ...`` prints one JSON list of
``{"to": ip, "ping": bool, "tcp": bool, "tcp_from": name}``. Targets are probed concurrently.
"""

from __future__ import annotations

import argparse
import asyncio
import json


async def ping(ip: str, timeout_s: float) -> bool:
    proc = await asyncio.create_subprocess_exec(
        "ping", "-c", "1", "-W", str(max(1, int(timeout_s))), "-q", ip,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await proc.wait() == 0


async def tcp(ip: str, port: int, timeout_s: float) -> str | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout_s)
        writer.write(b"probe")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(1024), timeout_s)
        writer.close()
        if data.endswith(b":probe"):
            return data[: -len(b":probe")].decode()
    except (OSError, TimeoutError):
        return None
    return None


async def probe_all(targets: list[str], port: int, timeout_s: float) -> list[dict[str, object]]:
    async def one(ip: str) -> dict[str, object]:
        ok_ping, answered = await asyncio.gather(ping(ip, timeout_s), tcp(ip, port, timeout_s))
        return {"to": ip, "ping": ok_ping, "tcp": answered is not None, "tcp_from": answered}

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
