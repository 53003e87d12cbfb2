"""Logging set-up and the ``logs`` plugin: per-plugin log levels at start and at run time."""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

from fastapi import APIRouter, HTTPException

from core.http import HTTPPlugin
from core.plugin import Plugin, PluginConfig

Level = Literal["debug", "info", "warning", "error", "critical"]
ROOT = "contiv"


def setup_logging(level: str | None = None) -> None:
    """Configure the root ``contiv`` logger once (level from ``INITIAL_LOGLVL``, default info)."""
    root = logging.getLogger(ROOT)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.propagate = False
    root.setLevel((level or os.environ.get("INITIAL_LOGLVL", "info")).upper())


class LogsConfig(PluginConfig):
    default_level: Level = "info"
    """Level of every ``contiv.*`` logger not listed in ``loggers``."""
    loggers: dict[str, Level] = {}
    """Levels per logger; a plugin's logger is named after the plugin (``kvscheduler``)."""


class LogsPlugin(Plugin):
    """Log levels per plugin, at start and at run time: ``GET /log/list``, ``PUT /log/{logger}/{level}``."""

    name = "logs"
    Config = LogsConfig
    config: LogsConfig

    def __init__(self, config: LogsConfig | None = None, *, http: HTTPPlugin) -> None:
        super().__init__(config)
        self.http = http

    @staticmethod
    def _logger(name: str) -> logging.Logger:
        return logging.getLogger(ROOT if name in ("", ROOT, "default") else f"{ROOT}.{name.removeprefix(ROOT + '.')}")

    def set_level(self, name: str, level: str) -> None:
        if level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError(f"unknown log level {level!r}")
        self._logger(name).setLevel(level.upper())

    def levels(self) -> dict[str, str]:
        out = {"default": logging.getLevelName(logging.getLogger(ROOT).level).lower()}
        for name, logger in sorted(logging.Logger.manager.loggerDict.items()):
            if name.startswith(ROOT + ".") and isinstance(logger, logging.Logger):
                out[name.removeprefix(ROOT + ".")] = logging.getLevelName(logger.getEffectiveLevel()).lower()
        return out

    async def init(self) -> None:
        setup_logging(self.config.default_level)
        for name, level in self.config.loggers.items():
            self.set_level(name, level)
        router = APIRouter(prefix="/log", tags=["logs"])

        @router.get("/list")
        async def list_levels() -> dict[str, str]:
            return self.levels()

        @router.put("/{logger}/{level}")
        async def put_level(logger: str, level: str) -> dict[str, str]:
            try:
                self.set_level(logger, level)
            except ValueError as err:
                raise HTTPException(400, str(err)) from err
            return {"logger": logger, "level": level.lower()}

        self.http.add_router(router)
