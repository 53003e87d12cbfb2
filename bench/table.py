"""The benches' common output: a two-column table on stdout and, with ``--json FILE``, the JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path


def emit(results: Mapping[str, object], json_path: Path | None) -> None:
    """Print ``results`` as an aligned metric/value table and write them to ``json_path``."""
    width = max(len(k) for k in results)
    print(f"{'metric':<{width}}  value")
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")


def agent_process_policy() -> None:
    """Run with the agent's process-wide policy (its ``process`` plugin's defaults: GC pause,
    heap trim), as the code measured runs inside contiv-agent."""
    from apps.vswitch.process import ProcessPlugin
    from core import tuning

    tuning.configure(ProcessPlugin().policy())
