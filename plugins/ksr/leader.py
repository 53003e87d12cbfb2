"""Lease-based leader election in etcd: exactly one KSR replica writes.

The leader holds the key ``/contiv-ksr/election/leader`` (value: its instance ID) attached to a
lease of ``ttl_s`` seconds and refreshes the lease every third of the TTL (at most every second).
The others watch the key and claim it (put-if-absent with their own lease) as soon as it is
deleted, and also check it at the same period in case a watch event was missed: when the leader
stops cleanly it revokes its lease (immediate hand-over); when it dies the lease expires within
the TTL and a standby takes over right then. A leader that cannot refresh its lease for a whole TTL, or finds the
key naming someone else, steps down. Writes are additionally guarded by comparing the key (see
:mod:`plugins.ksr.writer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from core.kvdb.api import Compare, EventType, KVBroker, KVError, KVUnavailableError, WatchEvent
from plugins.ksr.model import ELECTION_PREFIX

log = logging.getLogger("contiv.ksr.leader")

LEADER_KEY = ELECTION_PREFIX + "leader"


class LeaderElector:
    """Runs the election; calls ``on_elected`` / ``on_lost`` as leadership changes."""

    def __init__(
        self,
        broker: KVBroker,
        instance_id: str,
        ttl_s: int,
        on_elected: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        key: str = LEADER_KEY,
        on_observed: Callable[[str], None] | None = None,
    ) -> None:
        self.broker = broker
        self.instance_id = instance_id
        self.ttl_s = ttl_s
        self.key = key
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._on_observed = on_observed
        self.is_leader = False
        self.leader_id = ""
        self._lease = 0
        self._last_refresh = 0.0
        self._wake = asyncio.Event()

    @property
    def guard(self) -> Compare:
        """The transaction guard: the election key still names this instance."""
        return Compare(self.key, "value", self.instance_id.encode())

    @property
    def interval_s(self) -> float:
        return min(self.ttl_s / 3, 1.0)

    def check_now(self) -> None:
        """Re-check the leadership without waiting for the next period (e.g. a write was refused)."""
        self._wake.set()

    async def run(self) -> None:
        """Campaign and hold the leadership until cancelled."""
        watcher = asyncio.get_running_loop().create_task(self._watch_key(), name="ksr-election-watch")
        try:
            await self._loop()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_key(self) -> None:
        """Wake the campaign as soon as the key is deleted (lease expired or revoked)."""
        while True:
            events = self.broker.watch(self.key)
            try:
                async for item in events:
                    if isinstance(item, WatchEvent) and item.type is EventType.DELETE:
                        self._wake.set()
            except KVError as err:
                log.debug("election watch: %s", err)
            finally:
                await events.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(self.interval_s)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                if self.is_leader:
                    await self._hold()
                else:
                    await self._campaign()
            except KVError as err:
                log.warning("election: %s", err)
                if self.is_leader and time.monotonic() - self._last_refresh > self.ttl_s:
                    await self._step_down("lease could not be refreshed for a whole TTL")
            try:
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _campaign(self) -> None:
        current = await self.broker.get(self.key)
        if current is not None:
            leader_id = current.value.decode(errors="replace")
            if leader_id != self.leader_id:
                self.leader_id = leader_id
                if self._on_observed is not None:
                    self._on_observed(leader_id)
            return
        lease = await self.broker.grant_lease(self.ttl_s)
        if not await self.broker.put_if_absent(self.key, self.instance_id.encode(), lease=lease):
            await self.broker.revoke_lease(lease)
            return
        self._lease = lease
        self._last_refresh = time.monotonic()
        self.is_leader = True
        self.leader_id = self.instance_id
        log.info("%s is now the leader", self.instance_id)
        try:
            await self._on_elected()
        except KVError:
            raise
        except Exception:
            # Leading without working reflectors would block the standby: hand over instead.
            log.exception("could not start as the leader; resigning")
            await self.resign()

    async def _hold(self) -> None:
        try:
            await self.broker.refresh_lease(self._lease)
        except KVUnavailableError:
            raise  # maybe transient: tolerated for up to a TTL (see run)
        except KVError as err:
            await self._step_down(f"lease lost ({err})")
            return
        current = await self.broker.get(self.key)
        if current is None or current.value != self.instance_id.encode():
            await self._step_down("the election key no longer names this instance")
            return
        self._last_refresh = time.monotonic()

    async def _step_down(self, reason: str) -> None:
        log.warning("%s is no longer the leader: %s", self.instance_id, reason)
        self.is_leader = False
        self.leader_id = ""
        self._lease = 0
        await self._on_lost()

    async def resign(self) -> None:
        """Give the leadership up now (revoking the lease lets a standby take over at once)."""
        if not self.is_leader:
            return
        lease, self._lease = self._lease, 0
        self.is_leader = False
        await self._on_lost()
        try:
            await self.broker.revoke_lease(lease)
        except KVError as err:
            log.warning("could not revoke the leader lease (it expires by itself): %s", err)
