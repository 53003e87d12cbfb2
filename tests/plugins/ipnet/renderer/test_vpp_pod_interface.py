"""How the VPP renderer picks the pod interface (TAP v2 where /dev/vhost-net exists, af_packet
otherwise) and which af_packet flags and veth offloads it renders (issue 26 item 2)."""

from __future__ import annotations

import stat
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from plugins.ipnet.compute import node_intent, pod_intent
from plugins.ipnet.config import IPNetConfig, VppRenderSettings
from plugins.ipnet.renderer.vpp import VHOST_NET, VppRenderer, choose_pod_interface
from plugins.linux.descriptors.offload import LinkOffload
from plugins.vpp import model as vpp
from plugins.vpp.afpacket import create_flags, link_flags, parse_features
from tests.plugins.ipnet.support import plan

#: What the real VPP 26.10 printed for two af_packet interfaces (one made through the CLI, whose
#: defaults are both flags; one through the API without flags) and a loopback.
SHOW_HARDWARE = """\
              Name                Idx   Link  Hardware
host-c0                            1     up   host-c0
  Link speed: unknown
  RX Queues:
    queue thread         mode
    0     main (0)       interrupt
  Ethernet address 02:fe:ee:ce:6b:74
  Linux PACKET socket interface v3
  FEATURES:
    qdisc-bpass-enabled
    cksum-gso-enabled
  Host Interface Offload:
    creation time:
     rx checksum
     tx checksum
  RX Queue 0:
    block size:65536 nr:160  frame size:2048 nr:5120 next block:0
host-eth1                          2     up   host-eth1
  Link speed: unknown
  Linux PACKET socket interface v3
  FEATURES:
  Host Interface Offload:
    creation time:
     tx checksum
local0                             0    down  local0
  Link speed: unknown
  local
"""


def is_char_device(path: Path) -> bool:
    try:
        return stat.S_ISCHR(path.stat().st_mode)
    except OSError:
        return False


def test_explicit_modes_are_kept(tmp_path: Path) -> None:
    assert choose_pod_interface("tap", tmp_path / "none") == "tap"  # asked for: tap_create_v3 decides
    assert choose_pod_interface("veth", Path("/dev/null")) == "veth"


def test_auto_takes_tap_only_with_a_vhost_net_character_device(tmp_path: Path) -> None:
    assert choose_pod_interface("auto", Path("/dev/null")) == "tap"  # a character device, as vhost-net is
    regular = tmp_path / "vhost-net"
    regular.write_text("")
    assert choose_pod_interface("auto", regular) == "veth"  # a file of that name is not the device
    assert choose_pod_interface("auto", tmp_path / "missing") == "veth"
    with pytest.raises(ValueError, match="pod_interface 'memif'"):
        choose_pod_interface("memif")


def test_the_vhost_net_path_is_a_setting(tmp_path: Path) -> None:
    """A container without host devices: the host's /dev mounted elsewhere, named by the setting."""
    seen = VppRenderer(IPNetConfig(dataplane="vpp"), VppRenderSettings(vhost_net="/dev/null"))
    assert seen.pod_interface == "tap"
    unseen = VppRenderer(IPNetConfig(dataplane="vpp"), VppRenderSettings(vhost_net=str(tmp_path / "vhost-net")))
    assert unseen.pod_interface == "veth"


def test_this_host_gets_what_its_dev_vhost_net_allows() -> None:
    """The default (``auto``) on this host: af_packet here (no /dev/vhost-net), TAP where there is one."""
    renderer = VppRenderer(IPNetConfig(dataplane="vpp", node_namespace="node"))
    want = "tap" if is_char_device(VHOST_NET) else "veth"
    assert renderer.pod_interface == want
    node = node_intent(plan(1), "node1")
    pod = pod_intent(node, pod_name="web", pod_namespace="default", container_id="c1",
                     netns_path="/var/run/netns/p", ip=IPv4Address("10.1.1.7"))
    (iface,) = [v for v in renderer.render_pod(node, pod).values() if isinstance(v, vpp.Interface)]
    assert iface.type == (vpp.InterfaceType.TAP if want == "tap" else vpp.InterfaceType.AF_PACKET)
    host = "tap-vpp2" if want == "tap" else "afpacket-vpp2"
    assert renderer.outbound_interfaces(vxlan=False) == ("loopbackNIC", host)


@pytest.mark.parametrize(
    ("offload", "gso", "pod_offload", "header"),
    [
        (True, False, LinkOffload(namespace="/var/run/netns/p", ifname="eth0", tx_checksum=True,
                                  segmentation=False), True),
        (True, True, None, True),
        (False, False, LinkOffload(namespace="/var/run/netns/p", ifname="eth0", tx_checksum=False), False),
    ],
    ids=["header", "header+gso", "no-header"],
)
def test_af_packet_flags_and_veth_offloads(
    offload: bool, gso: bool, pod_offload: LinkOffload | None, header: bool
) -> None:
    settings = VppRenderSettings(pod_interface="veth", main_interface="host-eth1",
                                 af_packet_offload=offload, af_packet_gso=gso)
    renderer = VppRenderer(IPNetConfig(dataplane="vpp", node_namespace="node"), settings)
    node = node_intent(plan(1), "node1")
    pod = pod_intent(node, pod_name="web", pod_namespace="default", container_id="c1",
                     netns_path="/var/run/netns/p", ip=IPv4Address("10.1.1.7"))
    values = {**renderer.render_node(node), **renderer.render_pod(node, pod)}
    links = {v.name: v.afpacket for v in values.values() if isinstance(v, vpp.Interface) and v.afpacket}
    assert set(links) == {"main-nic", "afpacket-vpp2", renderer.pod_interface_name(pod)}
    for name, link in links.items():
        assert link.qdisc_bypass
        # the main NIC carries VXLAN: never the header (VPP 26.10 would hand the kernel inner offsets)
        assert link.offload is (header and name != "main-nic"), name
    offloads = {(v.namespace, v.ifname): v for v in values.values() if isinstance(v, LinkOffload)}
    if pod_offload is None:
        assert offloads == {}
    else:
        assert offloads[("/var/run/netns/p", "eth0")] == pod_offload
        assert offloads[("node", "vpp1")] == pod_offload.model_copy(update={"namespace": "node", "ifname": "vpp1"})


def test_flags_and_their_read_back() -> None:
    both = vpp.AfPacketLink(host_if_name="x", offload=True, qdisc_bypass=True)
    assert create_flags(both) == 3 and create_flags(vpp.AfPacketLink(host_if_name="x")) == 0
    features = parse_features(SHOW_HARDWARE)
    assert features == {
        "host-c0": frozenset({"qdisc-bpass-enabled", "cksum-gso-enabled"}),
        "host-eth1": frozenset(),
        "local0": frozenset(),
    }
    assert link_flags(features["host-c0"]) == {"offload": True, "qdisc_bypass": True}
    assert link_flags(features["host-eth1"]) == {"offload": False, "qdisc_bypass": False}
