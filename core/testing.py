"""Run a whole app in-process (kopf's ``KopfRunner`` style), for tests and benchmarks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from dependency_injector import containers

from core.agent import Agent
from core.app import AppSpec, build_plugins, load_config, make_agent


@asynccontextmanager
async def running_app(
    spec: AppSpec,
    config: Path | Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    customize: Callable[[containers.DeclarativeContainer], None] | None = None,
) -> AsyncIterator[Agent]:
    """Start the app's enabled plugins in this event loop; stop them on exit.

    ``environ`` replaces ``os.environ`` for overrides (default: none at all, so tests are not
    affected by the caller's environment). ``customize`` gets the container before the plugins
    are built, to override providers (``container.kvdb.override(providers.Object(x))``).
    """
    cfg, third = load_config(spec, config, environ if environ is not None else {})
    container = spec.container()
    if customize is not None:
        customize(container)
    agent = make_agent(spec, build_plugins(spec, cfg, third, container))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()
