"""The RemoteCNI service end to end over its unix socket, with a minimal event consumer."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

from core.kvdb.api import agent_prefix
from plugins.podmanager.api import AddPod, DeletePod, LocalPod, PodID
from plugins.podmanager.cni_pb2 import CNIRequest
from plugins.podmanager.cnicodes import CNICode
from plugins.podmanager.records import PodRecord, read_records_file
from plugins.podmanager.service import queued_deletes_dir
from tests.plugins.podmanager.conftest import NODE, PodManagerEnv, call, pod_args
from tests.plugins.podmanager.consumer import MinimalController


def add_fields(cid: str, netns: str, name: str = "web", ns: str = "default") -> dict[str, str]:
    return {
        "version": "1.0.0",
        "container_id": cid,
        "network_namespace": netns,
        "interface_name": "eth0",
        "extra_arguments": pod_args(name, ns),
        "extra_nw_config": json.dumps({"cniVersion": "1.0.0", "name": "k8s"}),
    }


async def test_socket_is_owner_only_in_created_directory(podmanager: PodManagerEnv) -> None:
    mode = os.stat(podmanager.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(podmanager.socket)).st_mode) == 0o700


async def test_add_returns_handler_result_and_persists_record(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    reply = await call(podmanager.socket, "Add", **add_fields("c1", netns_path))
    assert reply.result == 0, reply.error
    assert [i.name for i in reply.interfaces] == ["veth-c1", "eth0"]
    assert reply.interfaces[1].sandbox == netns_path
    assert [ip.address for ip in reply.interfaces[1].ip_addresses] == ["10.99.0.2/24"]
    assert reply.interfaces[1].ip_addresses[0].gateway == "10.99.0.1"
    assert [(r.dst, r.gw) for r in reply.routes] == [("0.0.0.0/0", "10.99.0.1")]
    assert list(reply.dns[0].nameservers) == ["10.96.0.10"]

    (event,) = podmanager.controller.events
    assert isinstance(event, AddPod)
    assert event.pod == LocalPod(
        name="web", namespace="default", container_id="c1", netns_path=netns_path
    )
    pods = podmanager.plugin.local_pods()
    assert pods[PodID("web", "default")].container_id == "c1"
    on_disk = read_records_file(Path(podmanager.config.records_file))
    assert on_disk is not None and on_disk[PodID("web", "default")].netns_path == netns_path
    kv = await podmanager.kvdb.broker.get(f"{agent_prefix(NODE)}podmanager/pod/default/web")
    assert kv is not None
    stored = LocalPod.model_validate_json(kv.value)
    assert stored.container_id == "c1"


async def test_add_same_container_twice_is_safe(podmanager: PodManagerEnv, netns_path: str) -> None:
    first = await call(podmanager.socket, "Add", **add_fields("c1", netns_path))
    second = await call(podmanager.socket, "Add", **add_fields("c1", netns_path))
    assert first.result == second.result == 0
    assert first.interfaces == second.interfaces
    assert all(isinstance(e, AddPod) for e in podmanager.controller.events)
    assert len(podmanager.plugin.local_pods()) == 1


async def test_new_container_of_known_pod_deletes_the_old_one_first(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    await call(podmanager.socket, "Add", **add_fields("old", netns_path))
    reply = await call(podmanager.socket, "Add", **add_fields("new", netns_path))
    assert reply.result == 0, reply.error
    kinds = [(type(e).__name__, e.pod.container_id) for e in podmanager.controller.events]  # type: ignore[attr-defined]
    assert kinds == [("AddPod", "old"), ("DeletePod", "old"), ("AddPod", "new")]
    assert podmanager.plugin.local_pods()[PodID("web", "default")].container_id == "new"
    # DEL of the replaced sandbox must not touch the new one.
    assert (await call(podmanager.socket, "Delete", container_id="old")).result == 0
    assert podmanager.plugin.local_pods()[PodID("web", "default")].container_id == "new"
    assert len(podmanager.controller.events) == 3


async def test_failed_add_reports_error_and_leaves_no_record(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    podmanager.controller.fail_next.append("pod subnet 10.1.1.0/28 is full (13 addresses)")
    reply = await call(podmanager.socket, "Add", **add_fields("c1", netns_path))
    assert reply.result == CNICode.ADD_FAILED
    assert "10.1.1.0/28 is full" in reply.error
    assert podmanager.plugin.local_pods() == {}
    assert await podmanager.kvdb.broker.list(agent_prefix(NODE)) == []


async def test_add_waits_for_pending_writes_and_undoes_the_pod_when_one_fails(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    podmanager.controller.persist_error = "disk full"
    reply = await call(podmanager.socket, "Add", **add_fields("c1", netns_path))
    assert reply.result == CNICode.ADD_FAILED
    assert "not persisted: disk full" in reply.error
    # The wired pod was deleted again and its record dropped, locally and in etcd.
    assert [type(e) for e in podmanager.controller.events] == [AddPod, DeletePod]
    assert podmanager.plugin.local_pods() == {}
    assert podmanager.controller.addresses == {}
    assert await podmanager.kvdb.broker.list(agent_prefix(NODE)) == []
    # Nothing pending: the next ADD succeeds.
    assert (await call(podmanager.socket, "Add", **add_fields("c1", netns_path))).result == 0


async def test_delete_pushes_delete_pod_and_is_idempotent(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    await call(podmanager.socket, "Add", **add_fields("c1", netns_path))
    for _ in range(2):
        reply = await call(podmanager.socket, "Delete", container_id="c1", network_namespace="")
        assert reply.result == 0, reply.error
    deletes = [e for e in podmanager.controller.events if isinstance(e, DeletePod)]
    assert len(deletes) == 1
    assert podmanager.plugin.local_pods() == {}
    assert await podmanager.kvdb.broker.list(agent_prefix(NODE)) == []
    # Never-seen container: still success, and no event.
    assert (await call(podmanager.socket, "Delete", container_id="nope")).result == 0
    assert len(podmanager.controller.events) == 2


async def test_bad_requests_get_cni_codes_and_change_nothing(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    cases = [
        (add_fields("", netns_path), CNICode.INVALID_ENVIRONMENT, "CNI_CONTAINERID"),
        (add_fields("c1", "/nonexistent/ns"), CNICode.INVALID_ENVIRONMENT, "/nonexistent/ns"),
        ({**add_fields("c1", netns_path), "extra_arguments": "K8S_POD_NAME=x"},
         CNICode.INVALID_ENVIRONMENT, "K8S_POD_NAMESPACE"),
        ({**add_fields("c1", netns_path), "extra_arguments": "garbage"},
         CNICode.INVALID_ENVIRONMENT, "KEY=VALUE"),
        ({**add_fields("c1", netns_path), "ipam_type": "host-local"},
         CNICode.UNSUPPORTED_FIELD, "host-local"),
    ]
    for fields, code, text in cases:
        reply = await call(podmanager.socket, "Add", **fields)
        assert (reply.result, text in reply.error) == (code, True), (fields, reply)
    check = await call(podmanager.socket, "Check", container_id="ghost", interface_name="eth0")
    assert check.result == CNICode.UNKNOWN_CONTAINER and "ghost" in check.error
    assert podmanager.controller.events == []
    assert podmanager.plugin.local_pods() == {}


async def test_agent_busy_or_stalled_is_try_again_later(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    podmanager.controller.refuse = True
    reply = await call(podmanager.socket, "Add", **add_fields("c1", netns_path))
    assert reply.result == CNICode.TRY_AGAIN_LATER and "full" in reply.error
    assert podmanager.plugin.local_pods() == {}
    podmanager.controller.refuse = False
    podmanager.controller.stall = True
    reply = await call(podmanager.socket, "Add", **add_fields("c2", netns_path))
    assert reply.result == CNICode.TRY_AGAIN_LATER and "not processed" in reply.error
    # The event may still be applied later: the record stays for the runtime's DEL.
    assert PodID("web", "default") in podmanager.plugin.local_pods()
    kv = await podmanager.kvdb.broker.get(f"{agent_prefix(NODE)}podmanager/pod/default/web")
    assert kv is not None and LocalPod.model_validate_json(kv.value).container_id == "c2"


async def test_parallel_adds_of_different_pods(podmanager: PodManagerEnv, netns_path: str) -> None:
    replies = await asyncio.gather(
        *(call(podmanager.socket, "Add", **add_fields(f"c{i}", netns_path, f"p{i}"))
          for i in range(10))
    )
    assert all(r.result == 0 for r in replies)
    addresses = {r.interfaces[1].ip_addresses[0].address for r in replies}
    assert len(addresses) == 10
    assert len(podmanager.plugin.local_pods()) == 10
    assert len(await podmanager.kvdb.broker.list(agent_prefix(NODE))) == 10
    server = getattr(podmanager.plugin, "_server", None)
    assert server.handler._pod_locks == {}  # per-pod locks do not pile up


async def test_restart_recovers_records_from_local_file(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    await call(podmanager.socket, "Add", **add_fields("c1", netns_path, "a"))
    await call(podmanager.socket, "Add", **add_fields("c2", netns_path, "b"))
    await podmanager.restart()
    assert set(podmanager.plugin.local_pods()) == {PodID("a", "default"), PodID("b", "default")}
    # The recovered pod is known: DEL works after the restart.
    assert (await call(podmanager.socket, "Delete", container_id="c1")).result == 0
    assert set(podmanager.plugin.local_pods()) == {PodID("b", "default")}


async def test_restart_without_local_file_recovers_from_kv_store(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    await call(podmanager.socket, "Add", **add_fields("c1", netns_path, "a"))
    await podmanager.plugin.close()
    os.unlink(podmanager.config.records_file)
    await podmanager.restart()
    pod = podmanager.plugin.local_pods()[PodID("a", "default")]
    assert pod.container_id == "c1"
    assert read_records_file(Path(podmanager.config.records_file)) is not None


async def test_stale_socket_of_crashed_agent_is_replaced(podmanager: PodManagerEnv) -> None:
    import socket as socketlib

    await podmanager.plugin.close()
    stale = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    stale.bind(podmanager.socket)  # bound, never listening: what a killed process leaves
    stale.close()
    await podmanager.restart()
    reply = await call(podmanager.socket, "Delete", container_id="x")
    assert reply.result == 0


def test_registers_with_pluggy_before_init(tmp_path: Path) -> None:
    """The agent registers every plugin with pluggy, which reads all attributes, before init;
    the controller then adopts the pod manager as an event handler."""
    from core.agent import new_plugin_manager
    from core.kvdb.plugin import KVDBPlugin
    from core.servicelabel import ServiceLabelPlugin
    from plugins.controller.handlers import check_handlers
    from plugins.podmanager.plugin import PodManagerPlugin
    from tests.plugins.podmanager.consumer import MinimalController

    plugin = PodManagerPlugin(
        controller=MinimalController(), kvdb=KVDBPlugin(), service_label=ServiceLabelPlugin()
    )
    new_plugin_manager([plugin])
    assert check_handlers([plugin]) == [plugin]
    assert plugin.local_pods() == {}


async def test_restart_unwires_adds_cut_by_a_crash_whose_namespace_is_gone(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    """A crash right after the first record write leaves a record without result; when its
    namespace is gone the restarted agent deletes the pod itself (the runtime's DEL may never
    come); with its namespace still there, the resync and the runtime's retry take it."""
    await call(podmanager.socket, "Add", **add_fields("c1", netns_path, "a"))
    store = podmanager.plugin._require_store()
    for name, netns in (("cut", "/var/run/netns/pmtest-gone-namespace"), ("cut-alive", netns_path)):
        await store.save(PodRecord(name=name, namespace="default", container_id=f"c-{name}",
                                   netns_path=netns, interface_name="eth0"), mirror=False)
    await podmanager.restart()
    task = podmanager.plugin._cleanup_task
    assert task is not None
    assert await asyncio.wait_for(task, 60) == [PodID("cut", "default")]
    assert set(podmanager.plugin.local_pods()) == {PodID("a", "default"),
                                                   PodID("cut-alive", "default")}
    deleted = [e.pod.id for e in podmanager.controller.events if isinstance(e, DeletePod)]
    assert deleted == [PodID("cut", "default")]
    assert read_records_file(Path(podmanager.config.records_file)).keys() == {  # type: ignore[union-attr]
        PodID("a", "default"), PodID("cut-alive", "default")}


async def test_restart_runs_the_dels_queued_while_it_was_down(
    podmanager: PodManagerEnv, netns_path: str
) -> None:
    """contiv-cni queues a DEL it could not deliver (``<socket dir>/pending-del``); the
    restarted agent runs each one, drops unknown containers' and unreadable files, ignores
    files being written, and keeps one whose DEL failed for the next start."""
    for cid, name in (("c1", "a"), ("c2", "b"), ("c3", "c")):
        await call(podmanager.socket, "Add", **add_fields(cid, netns_path, name))
    await podmanager.plugin.close()
    queue = queued_deletes_dir(podmanager.socket)
    assert stat.S_IMODE(queue.stat().st_mode) == 0o700  # made by the agent's start
    for cid in ("c1", "c3", "never-seen"):
        (queue / f"{cid}.del").write_bytes(
            CNIRequest(container_id=cid, cni_invocation=True).SerializeToString())
    (queue / "garbage.del").write_bytes(b"\xff\xff\xff")
    (queue / ".c2.tmp").write_bytes(CNIRequest(container_id="c2").SerializeToString())
    async def fail_c3(event: DeletePod) -> None:
        if event.pod.container_id == "c3":
            raise RuntimeError("unwiring c3 failed")

    await podmanager.restart(MinimalController(unwire=fail_c3))
    task = podmanager.plugin._cleanup_task
    assert task is not None
    await asyncio.wait_for(task, 60)
    deleted = [e.pod.id for e in podmanager.controller.events if isinstance(e, DeletePod)]
    assert deleted == [PodID("a", "default"), PodID("c", "default")]
    assert set(podmanager.plugin.local_pods()) == {PodID("b", "default"), PodID("c", "default")}
    assert sorted(p.name for p in queue.iterdir()) == [".c2.tmp", "c3.del"]
