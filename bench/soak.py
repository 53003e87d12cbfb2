"""Memory under churn, long: pod ADD/DEL cycles on one real agent with its default history
sizes, RSS sampled; prints a table, the slope after warm-up (KiB per 1,000 cycles) and the
plateau (RSS range after warm-up). Flat means the slope stays near zero (~0.2 MiB per 1,000
cycles in docs/reliability.md) once the histories are full.

    python bench/soak.py --cycles 2000 --warmup 1000 --json out.json

``make soak`` runs it and the reliability suite with many more cycles. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.churn import ChurnTestbed, churn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=1000,
                        help="cycles before the slope is measured (the default histories hold "
                             "1,000 events, two per cycle, plus 200 of the first hour)")
    parser.add_argument("--history", type=int, default=1000,
                        help="controller event_history_max_records (and scheduler history)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bed = ChurnTestbed(Path(tempfile.mkdtemp(prefix="soak-")), history=args.history,
                       prefix="soak")
    bed.start()
    try:
        result = churn(bed, args.cycles, args.warmup, sample_every=20)
    finally:
        bed.close()
    print(result.table())
    if args.json:
        args.json.write_text(json.dumps({
            "cycles": result.cycles, "warmup": result.warmup,
            "rss_first_mib": result.samples[0][1] / 1024,
            "rss_last_mib": result.samples[-1][1] / 1024,
            "slope_kib_per_1000_cycles": result.slope_kib_per_1000,
            "rss_after_warmup_mib": dict(zip(("min", "mean", "max"), result.after_warmup_mib, strict=True)),
            "load_avg_1m": os.getloadavg()[0],
        }, indent=1))


if __name__ == "__main__":
    main()
