"""netctl's output: aligned tables for people, ``-o json`` / ``-o yaml`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

FORMATS = ("table", "json", "yaml")


def cell(value: Any) -> str:
    """One table cell: lists joined by ',', empty values as '-'."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], max_width: int = 120) -> str:
    """Rows as an aligned table; columns are row keys, headed in upper case."""
    heads = [c.upper().replace("_", "-") for c in columns]
    cells = [[_clip(cell(row.get(c)), max_width) for c in columns] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def render(data: Any, fmt: str, rows: Sequence[dict[str, Any]] | None = None,
           columns: Sequence[str] = (), preamble: Sequence[str] = ()) -> str:
    """``data`` as JSON/YAML, or ``rows`` (default: ``data``) as a table after ``preamble``."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False, default=str)
    if fmt == "yaml":
        return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False).rstrip()
    shown = rows if rows is not None else data
    if not shown:
        return "\n".join([*preamble, "(none)"])
    body = table(shown, columns)
    return "\n".join([*preamble, body]) if preamble else body


def columns_of(rows: Sequence[dict[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """``first``, then every other key with scalar or list values, in order of appearance."""
    cols = [c for c in first if any(c in r for r in rows)]
    for row in rows:
        for key, value in row.items():
            if key not in cols and not isinstance(value, dict):
                cols.append(key)
    return cols
