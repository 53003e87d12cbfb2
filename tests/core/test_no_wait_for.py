"""No ``asyncio.wait_for`` in the agent's code (core and plugins): on Python 3.11 it loses a
cancellation that arrives in the same loop iteration as the result it waits for, so a task
looping on it may never stop (the controller's DB watcher hung ``stop()`` that way, see
``test_stop_right_after_a_wake_up_stops``). ``async with asyncio.timeout(...)`` keeps it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(r"\bwait_for\(")


def test_the_agent_code_times_out_with_asyncio_timeout() -> None:
    offenders = []
    for package in ("core", "plugins"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if FORBIDDEN.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []

