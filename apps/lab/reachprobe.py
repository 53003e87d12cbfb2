"""Keep probing targets until told to stop; report the longest outage of each.

``python -m apps.lab.reachprobe --interval 0.2 tcp:10.1.1.2:8080 tcp:10.96.0.10:80 ...`` connects
to every target every ``--interval`` seconds (a new TCP connection and one request to the echo
workload, :mod:`apps.lab.echo`) until its standard input closes (or ``--duration`` passes), then
prints ``{target: {"ok": n, "failed": n, "longest_outage_s": s}}``: the longest time between the
last answer before a run of failures and the first answer after it (a target that never came
back counts up to the end). Used while something is rolled or restarted, to measure what a
client saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time

from apps.lab.echo import parse_reply


async def _once(ip: str, port: int, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                writer.write(b"reach")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
        return parse_reply(line.decode(errors="replace")) is not None
    except (OSError, TimeoutError, ValueError):
        return False


async def watch(targets: list[str], interval_s: float, timeout_s: float, stop: threading.Event,
                duration_s: float) -> dict[str, dict[str, float]]:
    start = time.monotonic()
    stats = {t: {"ok": 0, "failed": 0, "longest_outage_s": 0.0} for t in targets}
    last_ok = {t: start for t in targets}
    down_since: dict[str, float | None] = {t: None for t in targets}
    while not stop.is_set() and time.monotonic() - start < duration_s:
        tick = time.monotonic()
        results = await asyncio.gather(*(_once(t.split(":")[1], int(t.split(":")[2]), timeout_s)
                                         for t in targets))
        now = time.monotonic()
        for target, ok in zip(targets, results, strict=True):
            s = stats[target]
            if ok:
                s["ok"] += 1
                if down_since[target] is not None:
                    s["longest_outage_s"] = max(s["longest_outage_s"], now - last_ok[target])
                    down_since[target] = None
                last_ok[target] = now
            else:
                s["failed"] += 1
                if down_since[target] is None:
                    down_since[target] = now
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - tick)))
    end = time.monotonic()
    for target in targets:
        if down_since[target] is not None:
            stats[target]["longest_outage_s"] = max(stats[target]["longest_outage_s"], end - last_ok[target])
        stats[target]["longest_outage_s"] = round(stats[target]["longest_outage_s"], 3)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", help="tcp:IP:PORT")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=600.0, help="stop after this many seconds at most")
    args = parser.parse_args()
    for t in args.targets:
        proto, _, rest = t.partition(":")
        if proto != "tcp" or rest.count(":") != 1:
            parser.error(f"target {t!r} is not tcp:IP:PORT")
    stop = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    print(json.dumps(asyncio.run(watch(args.targets, args.interval, args.timeout, stop, args.duration))))


if __name__ == "__main__":
    main()
