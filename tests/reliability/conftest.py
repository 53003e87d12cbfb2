"""Prints the reliability table after the run (see ``report.py``)."""

from __future__ import annotations

from typing import Any

from tests.reliability import report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not report.TOTALS:
        return
    terminalreporter.section("reliability")
    terminalreporter.write_line(report.table())
    report.write_json()
