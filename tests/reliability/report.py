"""The reliability suite's counters: what it did and what went wrong, printed as one table.

Each test adds to :data:`TOTALS`; ``conftest.py`` prints the table at the end of the run
(and writes it as JSON to ``$RELIABILITY_JSON`` when set). The promises are the zero rows.
"""

from __future__ import annotations

import json
import os
from collections import Counter

#: Rows in print order; the ones after "kills" must be zero.
ROWS = ("cycles", "pods", "kills", "etcd leader kills", "fuzz cases",
        "lost pods", "duplicate IPs", "leaked allocations", "pods without allocation",
        "leftover interfaces", "lost pings", "duplicate node IDs", "duplicate pod subnets",
        "crashes")
ZERO = ROWS[ROWS.index("lost pods"):]

TOTALS: Counter[str] = Counter()


def add(**counts: int) -> None:
    """Add counts (keyword = row name with '_' for ' ')."""
    for key, value in counts.items():
        name = key.replace("_", " ")
        if name not in ROWS:
            raise KeyError(f"unknown reliability row {name!r}")
        TOTALS[name] += value


def table() -> str:
    lines = [f"{'reliability':<26} {'count':>8}  promise"]
    for row in ROWS:
        promise = "0" if row in ZERO else ""
        lines.append(f"{row:<26} {TOTALS[row]:>8}  {promise}")
    return "\n".join(lines)


def write_json() -> None:
    path = os.environ.get("RELIABILITY_JSON")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({row: TOTALS[row] for row in ROWS}, out, indent=2)
