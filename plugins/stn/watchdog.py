"""Gives a stolen NIC back by itself when the dataplane is gone (contiv.md 3.12).

After ``grace_s`` from the last steal (or from the daemon's start), while something is stolen,
every ``check_interval_s`` it asks netlink for the dataplane's host interface (``vpp1``) and,
when configured, the agent's readiness URL. The interface missing or down for
``down_timeout_s``, or the agent unready for ``agent_timeout_s``, restores every stolen link
(``restore_retries`` attempts, ``restore_retry_interval_s`` apart) and logs why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from plugins.stn import links
from plugins.stn.config import STNConfig
from plugins.stn.service import STNError, STNService


class Watchdog:
    """See the module docstring; ``restores`` counts links given back by the watchdog."""

    def __init__(self, config: STNConfig, service: STNService, log: logging.Logger) -> None:
        self.config = config
        self.cfg = config.watchdog
        self.service = service
        self.log = log
        self.armed_at = time.monotonic()
        self.restores = 0
        self.last_reason = ""
        self._host_bad_since: float | None = None
        self._agent_bad_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        #: Called with a message when a link could not be restored (the plugin reports health).
        self.on_give_up: list[Callable[[str], None]] = []
        service.on_change.append(self.rearm)

    def rearm(self) -> None:
        """A steal or release happened: the grace period starts again."""
        self.armed_at = time.monotonic()
        self._host_bad_since = self._agent_bad_since = None

    def start(self) -> None:
        if self.cfg.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="stn-watchdog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def state(self) -> dict[str, object]:
        now = time.monotonic()
        return {
            "enabled": self.cfg.enabled,
            "host_interface": self.cfg.host_interface,
            "watching": bool(self.service.stolen) and now - self.armed_at >= self.cfg.grace_s,
            "host_bad_for_s": None if self._host_bad_since is None else round(now - self._host_bad_since, 3),
            "agent_bad_for_s": None if self._agent_bad_since is None else round(now - self._agent_bad_since, 3),
            "restores": self.restores,
            "last_reason": self.last_reason,
        }

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.check_interval_s)
            try:
                reason = await self.check()
                if reason:
                    await self.restore_all(reason)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("watchdog check failed")

    async def check(self) -> str:
        """One round; returns why the NICs must be restored, or ""."""
        now = time.monotonic()
        if not self.service.stolen or now - self.armed_at < self.cfg.grace_s:
            self._host_bad_since = self._agent_bad_since = None
            return ""
        ns = self.cfg.host_namespace or self.config.namespace
        up = await links.link_up(self.cfg.host_interface, ns)
        if up:
            self._host_bad_since = None
        else:
            self._host_bad_since = self._host_bad_since or now
            if now - self._host_bad_since >= self.cfg.down_timeout_s:
                state = "missing" if up is None else "down"
                return f"the dataplane's host interface {self.cfg.host_interface} is {state}"
        if self.cfg.agent_readiness_url:
            ready, why = await self._agent_ready()
            if ready:
                self._agent_bad_since = None
            else:
                self._agent_bad_since = self._agent_bad_since or now
                if now - self._agent_bad_since >= self.cfg.agent_timeout_s:
                    return f"the agent is not ready for {self.cfg.agent_timeout_s:g}s ({why})"
        return ""

    async def _agent_ready(self) -> tuple[bool, str]:
        try:
            async with httpx.AsyncClient(timeout=self.cfg.check_interval_s) as client:
                response = await client.get(self.cfg.agent_readiness_url)
        except httpx.HTTPError as exc:
            return False, f"{self.cfg.agent_readiness_url}: {type(exc).__name__}"
        return response.status_code == 200, f"{self.cfg.agent_readiness_url}: HTTP {response.status_code}"

    async def restore_all(self, reason: str) -> None:
        """Give back every stolen link, retrying each up to ``restore_retries`` times."""
        self.last_reason = reason
        for interface in list(self.service.stolen):
            self.log.warning("watchdog: %s: restoring %s", reason, interface)
            for attempt in range(1, self.cfg.restore_retries + 1):
                try:
                    await self.service.release(interface, reason=f"watchdog: {reason}")
                except STNError as err:
                    if interface not in self.service.stolen:
                        break  # released meanwhile by someone else
                    self.log.warning("watchdog: restore of %s, attempt %d/%d: %s", interface, attempt,
                                     self.cfg.restore_retries, err)
                    await asyncio.sleep(self.cfg.restore_retry_interval_s)
                    continue
                self.restores += 1
                break
            else:
                message = (f"watchdog gave up restoring {interface} after {self.cfg.restore_retries} attempts "
                           f"({reason}); its record stays in {self.config.state_file}")
                self.log.error("%s", message)
                for callback in self.on_give_up:
                    callback(message)
        self.rearm()
