"""What other plugins ask ipnet (IPNetAPI), and how ipnet gets its renderer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core.renderer import RendererUnavailable
from plugins.controller.events import DBResync
from plugins.controller.txn import EventTransaction
from plugins.ipnet.config import IPNetConfig
from plugins.ipnet.plugin import IPNetPlugin
from plugins.ipnet.renderer import make_renderer
from plugins.ipnet.renderer.vpp import choose_pod_interface
from plugins.podmanager.api import AddPod, PodID
from tests.plugins.ipnet.support import NodeTable, PodRecords, node, real_ipam
from tests.plugins.ipnet.test_plugin import local_pod


@pytest.mark.parametrize(("dataplane", "prefix", "outbound"), [
    ("linux", "cv", ()),
    # the default pod_interface (auto): af_packet on a host without /dev/vhost-net, TAP with one
    ("vpp", "pod-", ("loopbackNIC", f"{choose_pod_interface('auto').replace('veth', 'afpacket')}-vpp2", "vxlanBVI")),
])
async def test_pod_and_outbound_interfaces_come_from_ipnets_api(
    tmp_path: Path, dataplane: str, prefix: str, outbound: tuple[str, ...],
) -> None:
    nodes = NodeTable("node1", {"node1": node(1, "node1")})
    async with real_ipam(tmp_path, nodes) as ipam:
        plugin = IPNetPlugin(IPNetConfig(dataplane=dataplane), ipam=ipam, nodesync=nodes,  # type: ignore[arg-type]
                             podmanager=PodRecords())
        plugin.resync(DBResync({}, {}), None, 1, EventTransaction())  # type: ignore[arg-type]
        add = AddPod(local_pod("web"))
        plugin.update(add, EventTransaction())
        name = plugin.pod_interface_name(add.pod.id)
        assert name is not None and name.startswith(prefix)
        assert name == plugin.renderer.pod_interface_name(plugin.pods[add.pod.id])
        assert plugin.pod_interface_name(PodID("nosuch", "default")) is None
        assert plugin.outbound_interfaces() == outbound
        assert (plugin.dataplane(), plugin.node_namespace()) == (dataplane, "")


def test_an_unknown_or_unloadable_dataplane_has_no_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RendererUnavailable, match="ipnet: no renderer for dataplane 'ovs'"):
        make_renderer(IPNetConfig.model_construct(dataplane="ovs"))  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "plugins.ipnet.renderer.vpp", None)  # importing it fails
    with pytest.raises(RendererUnavailable, match="ipnet: the renderer for dataplane 'vpp'"):
        make_renderer(IPNetConfig(dataplane="vpp"))
