"""The connection to VPP: vpp-papi over the binary-API socket, behind an async face.

vpp-papi is blocking and not safe for concurrent calls, so every call runs in one dedicated
worker thread, in order. A reply with a non-zero ``retval`` becomes :class:`VPPCallError`
naming the message and the code; a lost socket or a missing reply becomes
:class:`VPPConnectionError` and starts reconnecting. A ``control_ping`` probe runs
periodically; its ``vpe_pid`` tells a restarted VPP (new PID, empty state) from a dropped
connection. Every successful reconnect calls the registered callbacks with ``restarted`` set
accordingly; the plugin answers with a downstream resync.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vpp_papi import VPPApiClient

from plugins.vpp.errors import VPPCallError, VPPConnectionError
from plugins.vpp.transport import install

#: Two requests answered slower than this within ``INLINE_PAUSE_S`` suspend inline calls (see
#: ``_call_inline``); one alone is a one-off cost of VPP (its first ACL on an interface: ~50 ms).
INLINE_SLOW_S = 0.05
#: A request answered slower than this suspends inline calls at once (VPP busy or hanging)...
INLINE_HANG_S = 0.5
#: ...for this long: calls go through the worker thread meanwhile.
INLINE_PAUSE_S = 5.0

log = logging.getLogger("contiv.vpp.connection")

ReconnectCallback = Callable[[bool], Awaitable[None]]


class CallStats:
    """Counts of API calls and failures, per message and in total."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_failures(self) -> int:
        return sum(self.failures.values())


class VPPConnection:
    """One client connection to VPP's binary API (see the module docstring)."""

    def __init__(
        self,
        api_socket: str,
        api_dir: str,
        *,
        client_name: str = "contiv-agent",
        reply_timeout_s: float = 5.0,
        reconnect_interval_s: float = 0.5,
        health_interval_s: float = 1.0,
    ) -> None:
        self.api_socket = api_socket
        self.api_dir = api_dir
        self.client_name = client_name
        self.reply_timeout_s = reply_timeout_s
        self.reconnect_interval_s = reconnect_interval_s
        self.health_interval_s = health_interval_s
        self.stats = CallStats()
        self.connected = False
        self.vpe_pid: int | None = None
        self.version: str = ""
        self.reconnects = 0
        self._client: VPPApiClient | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vpp-papi")
        #: Held while the client is in use (by the worker thread or by an inline call).
        self._client_lock = threading.Lock()
        #: Inline calls are suspended until then (monotonic) after a slow one.
        self._inline_after = 0.0
        #: When the last inline call slower than ``INLINE_SLOW_S`` ended (monotonic).
        self._last_slow = -INLINE_PAUSE_S
        self._callbacks: list[ReconnectCallback] = []
        self._lost_callbacks: list[Callable[[], None]] = []
        self._monitor: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._closed = False

    # ------------------------------------------------------------------------------ lifecycle

    def on_reconnect(self, callback: ReconnectCallback) -> None:
        """Call ``callback(restarted)`` after every reconnect (``restarted``: VPP's PID changed)."""
        self._callbacks.append(callback)

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (synchronously) when the connection is found lost."""
        self._lost_callbacks.append(callback)

    async def connect(self) -> None:
        """Connect once; raises :class:`VPPConnectionError` when VPP is not there."""
        async with self._connecting:
            if self.connected:
                return  # the reconnect loop got there first
            pid, version = await self._open()
            self.vpe_pid, self.version = pid, version
        log.info("connected to VPP %s (pid %d) on %s", version, pid, self.api_socket)

    async def connect_with_retry(self, timeout_s: float) -> None:
        """Keep trying :meth:`connect` until it works or ``timeout_s`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await self.connect()
                return
            except VPPConnectionError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(self.reconnect_interval_s)

    async def _open(self) -> tuple[int, str]:
        """(Re)open the client and probe it; ``connected`` only once the probe answered.

        Callers hold ``_connecting``: one opening at a time, so a start-up connect and the
        reconnect loop never tear down each other's fresh connection (issue 17: that race made
        agents drop a healthy connection and report a restart of a VPP that had not restarted).
        """
        await self._run(self._connect_sync)
        try:
            self.stats.calls.update(("control_ping", "show_version"))
            ping = await self._run(self._call_sync, "control_ping", {})
            version = await self._run(self._call_sync, "show_version", {})
        except VPPConnectionError:
            await self._run(self._disconnect_sync)
            raise
        self.connected = True
        return int(ping.vpe_pid), str(version.version)

    def start_monitor(self) -> None:
        """Start the periodic health probe (detects a lost or restarted VPP)."""
        if self._monitor is None:
            self._monitor = asyncio.create_task(self._monitor_loop(), name="vpp-health")

    async def close(self) -> None:
        self._closed = True
        for task in (self._monitor, self._reconnecting):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                    pass
        if self.connected:
            try:
                await self._run(self._disconnect_sync)
            except VPPConnectionError:
                pass
        self.connected = False
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------------------ calls

    async def call(self, message: str, **kwargs: Any) -> Any:
        """Send one request and return its reply; non-zero ``retval`` raises :class:`VPPCallError`."""
        reply = await self._api_call(message, kwargs)
        retval = getattr(reply, "retval", 0)
        if retval != 0:
            self.stats.failures[message] += 1
            raise VPPCallError(message, retval, _describe(kwargs))
        return reply

    async def dump(self, message: str, **kwargs: Any) -> list[Any]:
        """Run a ``*_dump`` request and return its details messages."""
        details = await self._api_call(message, kwargs)
        if isinstance(details, tuple):  # "modern" streams return (reply, details)
            details = details[1]
        return list(details)

    async def _api_call(self, message: str, kwargs: dict[str, Any]) -> Any:
        self.stats.calls[message] += 1
        if not self.connected:
            self.stats.failures[message] += 1
            if self.vpe_pid is not None:  # before the first connect, connect() is in charge
                self._schedule_reconnect()
            raise VPPConnectionError(f"VPP {message}: not connected to {self.api_socket}")
        try:
            if time.monotonic() >= self._inline_after and self._client_lock.acquire(blocking=False):
                return self._call_inline(message, kwargs)
            return await self._run(self._call_sync, message, kwargs)
        except VPPConnectionError as err:
            self.stats.failures[message] += 1
            self._lost(err)
            raise
        except VPPCallError:
            self.stats.failures[message] += 1
            raise

    # ------------------------------------------------------------------------------ threads

    def _call_inline(self, message: str, kwargs: dict[str, Any]) -> Any:
        """One request/reply in the calling (event loop) thread; the lock is held on entry.

        A VPP call takes well under a millisecond; the hop to the worker thread and back
        costs about as much again on a busy machine (the descriptors reached ~0.6 of raw
        vpp-papi's call rate). After a call slower than ``INLINE_HANG_S`` (VPP busy or
        hanging), or a second one slower than ``INLINE_SLOW_S`` within ``INLINE_PAUSE_S``,
        calls go through the worker thread again for ``INLINE_PAUSE_S``, so a stuck VPP never
        holds the event loop more than once per pause, and a one-off slow answer (VPP's first
        ACL applied to an interface takes ~50 ms) does not send a whole burst to the worker.
        """
        started = time.monotonic()
        try:
            return self._call_sync(message, kwargs)
        finally:
            self._client_lock.release()
            now = time.monotonic()
            took = now - started
            if took > INLINE_HANG_S or (took > INLINE_SLOW_S and now - self._last_slow < INLINE_PAUSE_S):
                self._inline_after = now + INLINE_PAUSE_S
            if took > INLINE_SLOW_S:
                self._last_slow = now

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._locked, fn, *args)

    def _locked(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._client_lock:
            return fn(*args)

    def _connect_sync(self) -> None:
        """Open a fresh client session (any previous one is closed first)."""
        self._safe_disconnect()
        if self._client is None:
            self._client = VPPApiClient(
                apidir=[self.api_dir],
                use_socket=True,
                server_address=self.api_socket,
                read_timeout=self.reply_timeout_s,
                async_thread=False,
            )
            install(self._client, self.reply_timeout_s, self.api_socket)
        try:
            self._client.connect(self.client_name)
        except (OSError, VPPApiClient.VPPIOError) as err:
            self._safe_disconnect()
            raise VPPConnectionError(f"cannot connect to VPP at {self.api_socket}: {err}") from err

    def _call_sync(self, message: str, kwargs: dict[str, Any]) -> Any:
        client = self._client
        if client is None:
            raise VPPConnectionError("no VPP client")
        try:
            fn = getattr(client.api, message)
        except AttributeError:
            raise VPPCallError(message, -9, "message unknown to this VPP") from None
        try:
            return fn(**kwargs)
        except (OSError, VPPApiClient.VPPIOError) as err:
            raise VPPConnectionError(f"VPP {message}: connection lost ({err})") from err

    def _disconnect_sync(self) -> None:
        self._safe_disconnect()

    def _safe_disconnect(self) -> None:
        client = self._client
        if client is not None and getattr(client.transport, "connected", False):
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001 - the socket is gone anyway
                pass

    # ------------------------------------------------------------------------------ health

    async def _monitor_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.health_interval_s)
            if not self.connected:
                continue
            try:
                await self.call("control_ping")
            except VPPConnectionError:
                log.warning("VPP health probe failed; reconnecting")
            except VPPCallError as err:
                log.warning("VPP health probe: %s", err)

    def _lost(self, why: object = "") -> None:
        if self.connected:
            log.warning("connection to VPP lost: %s", why)
            self.connected = False
            for callback in list(self._lost_callbacks):
                callback()
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._closed or (self._reconnecting is not None and not self._reconnecting.done()):
            return
        self._reconnecting = asyncio.create_task(self._reconnect_loop(), name="vpp-reconnect")

    async def _reconnect_loop(self) -> None:
        while not self._closed:
            try:
                async with self._connecting:
                    if self.connected:
                        return  # connect() got there first: nothing was lost meanwhile
                    pid, version = await self._open()
                    # Only a different PID is a restart; the first connection is none.
                    restarted = self.vpe_pid is not None and pid != self.vpe_pid
                    self.vpe_pid, self.version = pid, version
            except VPPConnectionError:
                await asyncio.sleep(self.reconnect_interval_s)
                continue
            self.reconnects += 1
            log.info("reconnected to VPP (pid %d, restarted: %s)", pid, restarted)
            for callback in list(self._callbacks):
                try:
                    await callback(restarted)
                except Exception:
                    log.exception("VPP reconnect callback failed")
            return


def _describe(kwargs: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k != "label_stack")
    return text if len(text) <= 200 else text[:197] + "..."
