"""This node keeps its ID record while it lives; an ID held by another node stops pod wiring.

Real etcd, controller, nodesync and IPAM (the ``running`` agent of ``test_agent``).
"""

from __future__ import annotations

import pytest

from plugins.controller.events import DBResync
from plugins.nodesync.api import VppNode
from plugins.nodesync.guard import NodeIDConflict
from plugins.nodesync.plugin import KSR_PREFIX, VPPNODE_RESOURCE
from plugins.podmanager.api import AddPod, LocalPod
from tests.plugins.nodesync.test_agent import NODE, Running, running, wait_until

__all__ = ["running"]  # the fixture


async def stored_name(run: Running, node_id: int) -> str | None:
    kv = await run.kvdb.broker.get(f"{KSR_PREFIX}allocatedIDs/{node_id}")
    return None if kv is None else VppNode.model_validate_json(kv.value).name


async def test_lost_record_is_republished_and_a_taken_id_stops_wiring(running: Running) -> None:
    broker, guard = running.kvdb.broker, running.nodesync.guard
    own_id = running.nodesync.node_id()
    key = f"{KSR_PREFIX}allocatedIDs/{own_id}"

    # An etcd wipe or restore loses the record: the agent puts it back at once, so a node
    # allocating next cannot take this node's ID (and pod subnet).
    await broker.delete(key)
    await wait_until(lambda: guard.republished == 1)
    assert await stored_name(running, own_id) == NODE
    assert guard.conflict is None

    # Another node holds the ID (it allocated while the record was lost): loud, and no pod
    # is wired on this node any more: its addresses would collide.
    other = VppNode(id=own_id, name="nsync-intruder", ip_addresses=["192.168.16.7/24"])
    await broker.put(key, other.model_dump_json().encode())
    await wait_until(lambda: guard.conflict is not None)
    assert "nsync-intruder" in (guard.conflict or "")
    state = running.nodesync.describe_internal_state() or {}
    assert "nsync-intruder" in str(state["idConflict"])
    assert running.nodesync.nodes()[NODE].id == own_id  # the table keeps this node
    add = AddPod(LocalPod(name="web", namespace="default", container_id="c1",
                          netns_path="/var/run/netns/none"))
    await running.controller.push_event(add)
    with pytest.raises(NodeIDConflict, match="nsync-intruder"):
        await add.wait()

    # The other node goes away (its record removed): this node re-claims its ID and wires again.
    await broker.delete(key)
    await wait_until(lambda: guard.republished == 2 and guard.conflict is None)
    assert await stored_name(running, own_id) == NODE



async def test_a_republished_record_keeps_the_published_addresses(running: Running) -> None:
    """The record put back after an etcd restore carries this node's published address: without
    it every peer (and this node) would fall back to the plan's 192.168.16.<ID>, which with
    ``node_interface`` is not the node's address.

    In an agent IPAM publishes before the controller's first resync, so that resync (not a
    watch event) is where nodesync first sees its record with the address: a resync with it.
    """
    own_id = running.nodesync.node_id()
    key = f"{KSR_PREFIX}allocatedIDs/{own_id}"
    # IPAM's own publish first (so it cannot overwrite the record of the resync below).
    await wait_until(lambda: [str(i) for i in running.nodesync.nodes()[NODE].ip_addresses]
                     == ["192.168.16.1/24"])
    published = VppNode(id=own_id, name=NODE, ip_addresses=["192.168.16.9/24"])
    resync = DBResync({VPPNODE_RESOURCE: {str(own_id): published}}, {})
    await running.controller.push_event(resync)
    await wait_until(lambda: [str(i) for i in running.nodesync.nodes()[NODE].ip_addresses]
                     == ["192.168.16.9/24"])
    await running.kvdb.broker.delete(key)
    await wait_until(lambda: running.nodesync.guard.republished == 1)
    kv = await running.kvdb.broker.get(key)
    assert kv is not None
    assert VppNode.model_validate_json(kv.value).ip_addresses == ["192.168.16.9/24"]
