"""The HTTP server plugin: one FastAPI app per process on uvicorn, routes added by plugins."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from pydantic import Field

from core.plugin import Plugin, PluginConfig


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal capture: the agent owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HTTPConfig(PluginConfig):
    address: str = "127.0.0.1"
    """Address to listen on; loopback by default so nothing is exposed unless asked."""
    port: int = Field(9999, ge=0, le=65535)
    """TCP port; 0 picks a free one (see ``base_url`` after start)."""
    disabled: bool = False
    """Do not start a server (routes are still accepted and ignored)."""


class HTTPPlugin(Plugin):
    """Serves the routers other plugins add during ``init``; starts listening in ``after_init``.

    Every app gets an OpenAPI description at ``/openapi.json`` and ``/docs``.
    """

    name = "http"
    Config = HTTPConfig
    config: HTTPConfig

    def __init__(self, config: HTTPConfig | None = None, *, title: str = "contiv") -> None:
        super().__init__(config)
        self.app = FastAPI(title=title)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port = self.config.port

    def add_router(self, router: APIRouter, **kwargs: Any) -> None:
        """Mount ``router``; call from a plugin's ``init``."""
        self.app.include_router(router, **kwargs)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.address}:{self.port}"

    async def after_init(self) -> None:
        if self.config.disabled:
            return
        family = socket.AF_INET6 if ":" in self.config.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.address, self.config.port))
        except OSError as err:
            sock.close()
            raise OSError(f"http: cannot listen on {self.config.address}:{self.config.port}: {err}") from err
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        cfg = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = _QuietServer(cfg)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.log.info("serving on %s", self.base_url)

    async def close(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, 5)
            except TimeoutError:
                self._task.cancel()
        if self._socket is not None:
            self._socket.close()
