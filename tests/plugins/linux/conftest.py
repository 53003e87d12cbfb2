"""Fixtures for the Linux descriptor tests: throw-away network namespaces, always removed."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

#: Prefix of every namespace these tests create (unique per test run).
PREFIX = f"h5l{uuid.uuid4().hex[:6]}"

pytestmark = pytest.mark.netns


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    """Run iproute2 (inside ``ns`` when given) and return its stdout."""
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


@pytest.fixture
def make_netns() -> Iterator[Callable[[], str]]:
    """Create uniquely named namespaces on demand; all are deleted after the test."""
    if os.geteuid() != 0:
        pytest.fail("network namespace tests need root")
    created: list[str] = []

    def make() -> str:
        name = f"{PREFIX}-{len(created)}-{uuid.uuid4().hex[:4]}"
        ip("netns", "add", name)
        created.append(name)
        ip("link", "set", "lo", "up", ns=name)
        return name

    try:
        yield make
    finally:
        for name in created:
            ip("netns", "del", name, check=False)
