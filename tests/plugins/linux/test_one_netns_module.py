"""One network-namespace module (defect 4 of issue 11): nothing but ``plugins/linux/netns.py``
calls setns(2) or knows where named namespaces live."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OWNER = ROOT / "plugins" / "linux" / "netns.py"
FORBIDDEN = re.compile(r"\bsetns\(|CLONE_NEWNET|[\"'f]/(var/)?run/netns\b")


def test_only_the_netns_module_enters_namespaces() -> None:
    offenders = []
    for package in ("core", "plugins", "apps"):
        for path in (ROOT / package).rglob("*.py"):
            if path == OWNER:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if FORBIDDEN.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
    assert FORBIDDEN.search(OWNER.read_text())  # the pattern does find the real thing
