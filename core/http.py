"""The HTTP server plugin: one FastAPI app per process on uvicorn, routes added by plugins."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import ipaddress
import socket
import ssl
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
    tls_cert_file: str = ""
    """PEM certificate (chain) to serve HTTPS with, together with ``tls_key_file``; required
    when ``address`` is not a loopback address (docs/security.md)."""
    tls_key_file: str = ""
    """PEM private key of ``tls_cert_file``."""
    insecure: bool = False
    """Serve plain HTTP on a non-loopback address anyway (the token then crosses the network in
    clear text); logs a warning at every start."""

    def loopback(self) -> bool:
        """``address`` is a loopback address (or ``localhost``)."""
        try:
            return ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            return self.address == "localhost"

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)

    @model_validator(mode="after")
    def _token_and_tls_when_exposed(self) -> HTTPConfig:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: set both (HTTPS) or neither")
        if self.disabled or self.loopback():
            return self
        if not (self.token or self.token_file):
            raise ValueError(
                f"address {self.address!r} is not a loopback address: set token or token_file "
                "so that only holders of the token reach the REST API"
            )
        if not self.tls and not self.insecure:
            raise ValueError(
                f"address {self.address!r} is not a loopback address: set tls_cert_file and "
                "tls_key_file so that the token never crosses the network in clear text "
                "(or insecure: true to serve plain HTTP anyway)"
            )
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context (None without ``tls_cert_file``); raises OSError naming the
        file when the certificate or the key cannot be read or do not match."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        except (OSError, ssl.SSLError) as err:
            raise OSError(f"http: cannot serve HTTPS with tls_cert_file {self.tls_cert_file} and "
                          f"tls_key_file {self.tls_key_file}: {err}") from err
        return ctx

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
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{self.config.address}:{self.port}"

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
        context = self.config.ssl_context()
        if not self.config.loopback() and context is None:
            self.log.warning("insecure: serving plain HTTP on %s: the bearer token crosses the network "
                             "in clear text (set tls_cert_file and tls_key_file)", self.config.address)
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
        tls: dict[str, Any] = {}
        if context is not None:  # checked above; uvicorn loads the same files into its own context
            tls = {"ssl_certfile": self.config.tls_cert_file, "ssl_keyfile": self.config.tls_key_file}
        cfg = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", **tls)
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
