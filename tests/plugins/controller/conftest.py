"""The controller tests' event-loop factory: loops that record their health reports, stopped
after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from plugins.controller.api import EventHandler
from plugins.controller.config import ControllerConfig
from plugins.controller.eventloop import EventLoop
from tests.plugins.controller.helpers import Factory, HealthRecordingLoop, RecordingScheduler


@pytest.fixture
async def make_loop() -> AsyncIterator[Factory]:
    loops: list[EventLoop] = []

    def factory(handlers: list[EventHandler], scheduler: RecordingScheduler, **cfg: Any) -> HealthRecordingLoop:
        health: list[tuple[bool, str]] = []
        loop = HealthRecordingLoop(
            scheduler,
            handlers,
            ControllerConfig(**cfg),
            report_health=lambda ok, detail: health.append((ok, detail)),
        )
        loop.health_log = health
        loop.start()
        loops.append(loop)
        return loop

    yield factory
    for loop in loops:
        await loop.stop()
