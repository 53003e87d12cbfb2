"""CNI requests turned into blocking AddPod / DeletePod events, and CHECK verification."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from google.protobuf.message import DecodeError

from plugins.controller.api import ControllerAPI
from plugins.podmanager.api import AddPod, DeletePod, LocalPod, PodID
from plugins.podmanager.check import verify_pod_network
from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest
from plugins.podmanager.cnicodes import CNICode, CNIError
from plugins.podmanager.cnispec import check_invocation, fill_output
from plugins.podmanager.convert import (
    error_reply,
    pod_id_from_args,
    prev_result_of,
    reply_from_result,
    result_from_event,
)
from plugins.podmanager.records import PodRecord, PodRecordStore
from plugins.podmanager.stats import RequestStats

#: The directory next to the CNI socket where ``contiv-cni`` queues the DELs it gets while no
#: agent runs (``cni/main.go``, ``queueDirName``).
QUEUED_DELETES_DIR = "pending-del"


def queued_deletes_dir(socket_path: str) -> Path:
    """Where ``contiv-cni`` queues DELs for the agent on ``socket_path``."""
    return Path(socket_path).parent / QUEUED_DELETES_DIR


class PodRequestService:
    """Serves ADD, DEL and CHECK; one request per pod at a time, different pods in parallel."""

    def __init__(
        self,
        store: PodRecordStore,
        events: ControllerAPI,
        event_timeout_s: float,
        log: logging.Logger,
        stats: RequestStats | None = None,
    ) -> None:
        self.stats = stats or RequestStats()
        self.store = store
        self.events = events
        self.event_timeout_s = event_timeout_s
        self.log = log
        # Per-pod locks with their number of users, dropped when unused (pods come and go).
        self._pod_locks: dict[PodID, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def _pod_lock(self, pod: PodID) -> AsyncIterator[None]:
        lock, users = self._pod_locks.setdefault(pod, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._pod_locks[pod]

    # gRPC entry points: every failure becomes an error reply, never an RPC error.
    async def add(self, request: CNIRequest) -> CNIReply:
        return await self._serve("ADD", request, self._add)

    async def delete(self, request: CNIRequest) -> CNIReply:
        return await self._serve("DEL", request, self._delete)

    async def check(self, request: CNIRequest) -> CNIReply:
        return await self._serve("CHECK", request, self._check)

    async def _serve(self, verb: str, request: CNIRequest, op: _Op) -> CNIReply:
        start = time.perf_counter()
        try:
            if request.cni_invocation:
                check_invocation(verb, request)
            reply = await op(request)
        except CNIError as exc:
            self.log.warning("CNI %s %s failed: %s", verb, request.container_id[:12], exc)
            reply = error_reply(exc)
        except Exception as exc:  # a bug must still produce a CNI error, not a hung runtime
            self.log.exception("CNI %s %s crashed", verb, request.container_id[:12])
            reply = error_reply(CNIError(CNICode.INTERNAL, f"pod manager error: {exc!r}"))
        fill_output(verb, request, reply)
        elapsed = time.perf_counter() - start
        self.stats.observe(verb.lower(), reply.result, elapsed)
        if reply.result == 0:
            self.log.info(
                "CNI %s %s done in %.1f ms", verb, request.container_id[:12], elapsed * 1000
            )
        return reply

    # ADD.
    async def _add(self, request: CNIRequest) -> CNIReply:
        _require(request.container_id, "container ID (CNI_CONTAINERID) is empty")
        _require(request.interface_name, "interface name (CNI_IFNAME) is empty")
        _require(request.network_namespace, "network namespace (CNI_NETNS) is empty")
        if request.ipam_type:
            raise CNIError(
                CNICode.UNSUPPORTED_FIELD,
                f"ipam.type={request.ipam_type!r}: delegated IPAM is not supported; "
                "the agent assigns pod addresses",
            )
        if not os.path.exists(request.network_namespace):
            raise CNIError(
                CNICode.INVALID_ENVIRONMENT,
                f"network namespace {request.network_namespace} does not exist",
            )
        pod_id = pod_id_from_args(request.extra_arguments)
        async with self._pod_lock(pod_id):
            known = self.store.get(pod_id)
            if known is not None and (
                known.container_id != request.container_id
                or known.netns_path != request.network_namespace
            ):
                # The pod got a new sandbox: remove what the old one had first.
                self.log.info(
                    "pod %s: replacing container %s by %s",
                    pod_id, known.container_id[:12], request.container_id[:12],
                )
                await self._push_delete(known)
                await self.store.remove(pod_id)
                known = None
            record = PodRecord(
                name=pod_id.name,
                namespace=pod_id.namespace,
                container_id=request.container_id,
                netns_path=request.network_namespace,
                interface_name=request.interface_name,
            )
            # Persist before wiring: a crash mid-way must never forget a wired pod. The local
            # file is what a restarted agent reads; etcd's copy is written once, with the
            # result, before the reply (a crash before that is repaired by the restart's sync).
            if known is None:
                await self.store.save(record, mirror=False)
            event = AddPod(record.as_local_pod())
            try:
                await self._push_and_wait(event, CNICode.ADD_FAILED)
            except EventTimeoutError:
                # The event may still be applied: keep the record for the runtime's DEL.
                await self.store.mirror(pod_id)
                raise
            except CNIError:
                if known is None:
                    await self.store.remove(pod_id)
                raise
            result = result_from_event(event)
            # The handlers' own pending writes (IPAM's file) overlap with the record's.
            pending = asyncio.gather(*(write() for write in event.before_reply))
            try:
                await self.store.save(record.model_copy(update={"result": result}))
            finally:
                try:
                    await pending
                except Exception as exc:
                    await self._undo_add(record.as_local_pod(), known is None)
                    raise CNIError(
                        CNICode.ADD_FAILED, f"{event.describe()}: not persisted: {exc}"
                    ) from exc
            return reply_from_result(result)

    async def _undo_add(self, pod: LocalPod, forget: bool) -> None:
        """Un-wire a pod whose ADD cannot be answered with success (and drop a new record)."""
        try:
            await self._push_and_wait(DeletePod(pod), CNICode.DELETE_FAILED)
        except CNIError as exc:
            # The record stays: the runtime's DEL after our error retries the clean-up.
            self.log.error("pod %s: un-wiring after a failed ADD failed: %s", pod.id, exc)
            return
        if forget:
            await self.store.remove(pod.id)

    async def clean_after_start(self, queue: Path) -> list[PodID]:
        """Once serving: the DELs queued while no agent ran, then the cut ADDs (both retried
        while the controller does not take events yet); returns the cut ADDs' pods."""
        await self.run_queued_deletes(queue)
        return await self.clean_cut_adds()

    async def run_queued_deletes(self, queue: Path, retry_s: float = 0.5,
                                 give_up_s: float = 300.0) -> list[str]:
        """Run the DELs that ``contiv-cni`` queued in ``queue`` while no agent ran (the
        runtime got success for them); returns their container IDs.

        Makes ``queue`` first when missing: the binary queues only into an existing
        directory (made by an agent since the node booted), so no DEL waits for a reader that
        never comes. Each file is a ``CNIRequest``; the pod whose record has that container ID
        is un-wired and its record dropped, an unknown container is nothing to do. A file
        stays for the next start when its DEL fails; an unreadable one is logged and removed.
        """
        try:
            queue.mkdir(mode=0o700, exist_ok=True)
            paths = sorted(p for p in queue.iterdir()
                           if p.suffix == ".del" and not p.name.startswith("."))
        except OSError as exc:
            self.log.error("queued DELs in %s: %s (contiv-cni answers DEL with 11 while the "
                           "agent is down)", queue, exc)
            return []
        deadline = time.monotonic() + give_up_s
        done: list[str] = []
        for path in paths:
            try:
                container_id = CNIRequest.FromString(path.read_bytes()).container_id
            except (OSError, DecodeError) as exc:
                self.log.error("queued DEL %s is unreadable, dropped: %s", path, exc)
                path.unlink(missing_ok=True)
                continue
            record = self.store.find_container(container_id)
            if record is not None:
                self.log.info("container %s: running the DEL queued while the agent was "
                              "down (pod %s)", container_id[:12], record.id)
                if await self._delete_retrying(record, container_id, retry_s, deadline) is False:
                    continue
            path.unlink(missing_ok=True)
            done.append(container_id)
        return done

    async def clean_cut_adds(self, retry_s: float = 0.5, give_up_s: float = 300.0) -> list[PodID]:
        """Un-wire the pods whose ADD a crash cut and whose namespace is gone; returns them.

        Such a record has no result (the runtime got no success, its sandbox is gone); the
        runtime's DEL would clean it up, but the agent does not depend on it: the address and
        the record would otherwise stay, and count as a live pod for IPAM's stale sweep. A
        record without result whose namespace still exists is left to the resync (which wires
        it) and to the runtime's retry. Retries while the controller does not take events yet.
        """
        cleaned: list[PodID] = []
        deadline = time.monotonic() + give_up_s
        for record in list(self.store.all().values()):
            if record.result is not None or os.path.exists(record.netns_path):
                continue
            self.log.warning("pod %s: its ADD was cut by a crash and its namespace %s is "
                             "gone: un-wiring it", record.id, record.netns_path)
            outcome = await self._delete_retrying(record, record.container_id, retry_s, deadline)
            if outcome is False:
                return cleaned
            if outcome:
                cleaned.append(record.id)
        return cleaned

    async def _delete_retrying(self, record: PodRecord, container_id: str, retry_s: float,
                               deadline: float) -> bool | None:
        """Un-wire a pod and drop its record, retrying while the agent cannot take the event
        yet: True when done, False when that failed, None when the pod's record was removed
        or replaced meanwhile."""
        async with self._pod_lock(record.id):
            current = self.store.get(record.id)
            if current is None or current.container_id != container_id:
                return None
            while True:
                try:
                    await self._push_delete(current)
                    break
                except CNIError as exc:
                    if exc.code != CNICode.TRY_AGAIN_LATER or time.monotonic() > deadline:
                        self.log.error("pod %s: un-wiring failed: %s", record.id, exc)
                        return False
                    await asyncio.sleep(retry_s)
            await self.store.remove(current.id)
        return True

    # DEL.
    async def _delete(self, request: CNIRequest) -> CNIReply:
        _require(request.container_id, "container ID (CNI_CONTAINERID) is empty")
        record = self.store.find_container(request.container_id)
        if record is None:
            return CNIReply(result=0)  # unknown or already deleted: DEL is idempotent
        async with self._pod_lock(record.id):
            current = self.store.get(record.id)
            if current is None or current.container_id != request.container_id:
                return CNIReply(result=0)  # deleted or replaced meanwhile
            await self._push_delete(current)
            await self.store.remove(current.id)
        return CNIReply(result=0)

    async def _push_delete(self, record: PodRecord) -> None:
        await self._push_and_wait(DeletePod(record.as_local_pod()), CNICode.DELETE_FAILED)

    # CHECK.
    async def _check(self, request: CNIRequest) -> CNIReply:
        _require(request.container_id, "container ID (CNI_CONTAINERID) is empty")
        record = self.store.find_container(request.container_id)
        if record is None:
            raise CNIError(
                CNICode.UNKNOWN_CONTAINER,
                f"container {request.container_id} has no pod on this node",
            )
        if request.network_namespace and request.network_namespace != record.netns_path:
            raise CNIError(
                CNICode.CHECK_FAILED,
                f"container {request.container_id} was added in {record.netns_path}, "
                f"not {request.network_namespace}",
            )
        expected = prev_result_of(request) or record.result
        if expected is None:
            raise CNIError(CNICode.CHECK_FAILED, f"pod {record.id} has no recorded result")
        ifname = request.interface_name or record.interface_name
        await verify_pod_network(record.netns_path, ifname, expected)
        return CNIReply(result=0)

    async def _push_and_wait(self, event: AddPod | DeletePod, failure: int) -> None:
        try:
            await self.events.push_event(event)
        except Exception as exc:
            raise CNIError(
                CNICode.TRY_AGAIN_LATER, f"the agent cannot take the {event.name} event: {exc}"
            ) from exc
        try:
            async with asyncio.timeout(self.event_timeout_s):
                await asyncio.shield(event.wait())
        except TimeoutError as exc:
            raise EventTimeoutError(
                CNICode.TRY_AGAIN_LATER,
                f"{event.describe()} not processed within {self.event_timeout_s:g} s",
            ) from exc
        except CNIError:
            raise
        except Exception as exc:
            code = getattr(exc, "cni_code", None)
            raise CNIError(
                code if isinstance(code, int) else failure, f"{event.describe()} failed: {exc}"
            ) from exc


class EventTimeoutError(CNIError):
    """The event was queued but not processed in time (it may still be applied later)."""


def _require(value: str, message: str) -> None:
    if not value:
        raise CNIError(CNICode.INVALID_ENVIRONMENT, message)


class _Op(Protocol):
    async def __call__(self, request: CNIRequest) -> CNIReply: ...
