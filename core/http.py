"""The HTTP server plugin: one FastAPI app per process on uvicorn, routes added by plugins."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import Field, model_validator

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
    token: str = ""
    """Bearer token every request must carry (``Authorization: Bearer <token>``) except
    ``open_paths``; required when ``address`` is not a loopback address."""
    token_file: str = ""
    """Read ``token`` from this file instead (a Kubernetes Secret mounted as a file)."""
    open_paths: list[str] = ["/liveness", "/readiness"]
    """Paths served without the token (the kubelet's probes)."""

    @model_validator(mode="after")
    def _token_when_exposed(self) -> HTTPConfig:
        if self.disabled or self.token or self.token_file:
            return self
        try:
            loopback = ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            loopback = self.address == "localhost"
        if not loopback:
            raise ValueError(
                f"address {self.address!r} is not a loopback address: set token or token_file "
                "so that only holders of the token reach the REST API"
            )
        return self

    def bearer_token(self) -> str:
        """The configured token ('' when none); reads ``token_file`` when set."""
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError as err:
                raise OSError(f"http: cannot read token_file {self.token_file}: {err}") from err
        return self.token


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
        """Mount ``router``; call from a plugin's ``init``.

        Every route must be ``async def``: FastAPI runs a plain ``def`` route in a worker
        thread, where it would read or change state owned by the agent's event loop while a
        transaction is changing it. A route that has slow blocking work hands just that work to
        a thread (``asyncio.to_thread``) and keeps touching plugin state on the loop.
        """
        for route in router.routes:
            if isinstance(route, APIRoute) and not inspect.iscoroutinefunction(route.endpoint):
                methods = ",".join(sorted(route.methods or ()))
                raise TypeError(
                    f"route {methods} {route.path} ({route.endpoint.__name__}) is not async: "
                    "routes run on the event loop (make it 'async def')"
                )
        self.app.include_router(router, **kwargs)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.address}:{self.port}"

    def _require_token(self, token: str) -> None:
        expected = f"Bearer {token}".encode()
        open_paths = frozenset(self.config.open_paths)

        @self.app.middleware("http")
        async def check_token(request: Request,
                              call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            if request.url.path not in open_paths:
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
            return await call_next(request)

    async def after_init(self) -> None:
        if self.config.disabled:
            return
        token = self.config.bearer_token()
        if self.config.token_file and not token:
            raise OSError(f"http: token_file {self.config.token_file} is empty")
        if token:
            self._require_token(token)
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
                async with asyncio.timeout(5):
                    await self._task
            except TimeoutError:
                self._task.cancel()
        if self._socket is not None:
            self._socket.close()
