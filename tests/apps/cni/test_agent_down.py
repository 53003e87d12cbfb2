"""DEL while no agent runs: contiv-cni queues it next to the socket and succeeds, and the
agent runs it when it starts; DEL whose outcome is unknown stays "try again later"."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import pytest

from plugins.podmanager.api import DeletePod, PodID
from plugins.podmanager.cni_pb2 import CNIRequest
from plugins.podmanager.cnicodes import CNICode
from plugins.podmanager.plugin import PodManagerPlugin
from plugins.podmanager.records import read_records_file
from tests.apps.cni.conftest import Agent, Namespaces, host_ifname, run
from tests.apps.cni.helpers import exec_cni, netconf, pod_env

pytestmark = pytest.mark.netns


async def test_del_without_agent_is_queued_for_its_start(
    cni_bin: Path, namespaces: Namespaces, tmp_path: Path
) -> None:
    pod_ns = namespaces.create("pod")
    (tmp_path / "pending-del").mkdir(mode=0o700)  # as an agent that ran here made it
    missing = tmp_path / "absent.sock"
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))  # what a killed agent leaves: a socket file nobody listens on
    sock.close()
    for path in (missing, stale):
        cid = uuid.uuid4().hex
        conf = netconf("1.0.0", str(path))
        out = await exec_cni(cni_bin, "DEL", conf, pod_env(cid, f"/var/run/netns/{pod_ns}", "web"))
        assert out.status == 0 and out.output is None, out
        queued = CNIRequest.FromString((tmp_path / "pending-del" / f"{cid}.del").read_bytes())
        assert queued.container_id == cid and queued.cni_invocation
    # Without the queue directory no agent ran there since boot: whether one will, and what
    # it holds, is unknown; the binary makes no directory.
    never = tmp_path / "never"
    never.mkdir()
    conf = netconf("1.0.0", str(never / "cni.sock"))
    out = await exec_cni(cni_bin, "DEL", conf, pod_env("c1", f"/var/run/netns/{pod_ns}", "web"))
    assert out.status == 1 and out.output["code"] == CNICode.TRY_AGAIN_LATER
    assert "could not be queued" in out.output["msg"] and "no agent ran" in out.output["msg"]
    assert list(never.iterdir()) == []


async def test_agent_runs_the_queued_del_when_it_starts(
    cni_bin: Path, agent: Agent, namespaces: Namespaces
) -> None:
    """The pod's DEL comes while the agent is down: the runtime gets success, and the
    restarted agent un-wires the pod and drops its record before anything else."""
    gone, kept = namespaces.create("gone"), namespaces.create("kept")
    conf = netconf("1.0.0", agent.socket)
    env_gone = pod_env(uuid.uuid4().hex, f"/var/run/netns/{gone}", "gone")
    env_kept = pod_env(uuid.uuid4().hex, f"/var/run/netns/{kept}", "kept")
    for env in (env_gone, env_kept):
        assert (await exec_cni(cni_bin, "ADD", conf, env)).status == 0
    await agent.plugin.close()  # the agent stops

    out = await exec_cni(cni_bin, "DEL", conf, env_gone)
    assert out.status == 0, out.output
    queue = Path(agent.socket).parent / "pending-del"
    assert [p.name for p in queue.iterdir()] == [f"{env_gone['CNI_CONTAINERID']}.del"]
    # (The runtime removes the sandbox once DEL succeeded; here it is still there, so the
    # agent's un-wiring shows.)
    records = Path(agent.plugin.config.records_file)
    assert set(read_records_file(records) or {}) == {PodID("gone", "default"),
                                                      PodID("kept", "default")}

    restarted = PodManagerPlugin(agent.plugin.config, controller=agent.controller,
                                 kvdb=agent.plugin.kvdb, service_label=agent.plugin.service_label)
    await restarted.init()
    await restarted.after_init()
    try:
        task = restarted._cleanup_task
        assert task is not None
        await asyncio.wait_for(task, 60)
        assert set(restarted.local_pods()) == {PodID("kept", "default")}
        assert set(read_records_file(records) or {}) == {PodID("kept", "default")}
        assert list(queue.iterdir()) == []
        deleted = [e.pod.id for e in agent.controller.events if isinstance(e, DeletePod)]
        assert deleted == [PodID("gone", "default")]
        links = run("ip", "-n", agent.node, "-o", "link").stdout
        assert host_ifname(env_gone["CNI_CONTAINERID"]) not in links
        assert host_ifname(env_kept["CNI_CONTAINERID"]) in links
        # The runtime's DEL again (it may retry) is idempotent; the kept pod is still served.
        assert (await exec_cni(cni_bin, "DEL", conf, env_gone)).status == 0
        assert (await exec_cni(cni_bin, "DEL", conf, env_kept)).status == 0
        assert restarted.local_pods() == {}
    finally:
        await restarted.close()


async def test_del_of_an_unresponsive_agent_is_try_again_later(
    cni_bin: Path, namespaces: Namespaces, tmp_path: Path
) -> None:
    """An agent that takes the connection and then dies gives no answer: the outcome is
    unknown, the runtime must retry, and nothing is queued."""
    pod_ns = namespaces.create("pod")
    path = tmp_path / "dying.sock"
    server = await asyncio.start_unix_server(
        lambda reader, writer: writer.close(), path=str(path))
    try:
        out = await exec_cni(cni_bin, "DEL", netconf("1.0.0", str(path)),
                             pod_env("c1", f"/var/run/netns/{pod_ns}", "web"))
    finally:
        server.close()
        await server.wait_closed()
    assert out.status == 1 and out.output["code"] == CNICode.TRY_AGAIN_LATER, out.output
    assert "closed the connection" in out.output["msg"]
    assert not (tmp_path / "pending-del").exists()
