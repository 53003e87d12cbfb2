"""``contiv-lab up --dataplane vpp``: a real VPP per node, owning the node's data NIC.

Each node gets a second NIC ``eth1`` on the lab's data bridge ``br1`` (no Linux address: VPP
attaches it through af_packet as ``host-eth1``, the agent's ``main_interface``), and a VPP in the
node's namespace (its sockets in the node's lab directory). The agent gets the ``vpp`` plugin,
``ipnet.dataplane: vpp`` with veth pod interfaces (no vhost-net here) and node addresses from
``192.168.17.0/24`` (the data network), while etcd stays on ``eth0`` (the management network).
Policies are VPP ACLs (``policy.renderer: vpp-acl``), services NAT44 mappings. The VPP is found
like the tests find it (``CONTIV_TEST_VPP_DIR`` or ``vpp`` on PATH).
"""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

from apps.lab import netns
from apps.lab.dataplane.realvpp import RealVPP, VPPInstall, find_vpp
from apps.lab.errors import LabError
from apps.lab.state import LabState, NodeState

DATA_BRIDGE = "br1"
DATA_CIDR = "192.168.17.0/24"


def data_ip(node: NodeState) -> str:
    """The node's address on the data network (IPAM's plan: host #index of ``DATA_CIDR``)."""
    return str(ip_network(DATA_CIDR)[node.index])


def find_or_explain() -> VPPInstall:
    """The VPP to run, or ``RuntimeError`` saying why there is none."""
    install, how = find_vpp()
    if install is None:
        raise RuntimeError(f"--dataplane vpp needs a VPP: {how}")
    return install


def node_vpp(state: LabState, node: NodeState, install: VPPInstall) -> RealVPP:
    return RealVPP(install, node.netns, f"{state.name}{node.index}", state.node_dir(node.name) / "vpp")


def prepare_node(state: LabState, node: NodeState) -> None:
    """The node's data NIC on ``br1`` and its VPP (started, ready)."""
    install = find_or_explain()
    ns = state.underlay_ns
    if not (netns.run(["ip", "link", "show", DATA_BRIDGE], netns=ns, check=False).returncode == 0):
        netns.run(["ip", "link", "add", DATA_BRIDGE, "type", "bridge"], netns=ns)
        netns.run(["ip", "link", "set", DATA_BRIDGE, "up"], netns=ns)
    netns.veth(node.netns, "eth1", ns, f"d{node.index}")
    netns.run(["ip", "link", "set", f"d{node.index}", "master", DATA_BRIDGE], netns=ns)
    node_vpp(state, node, install).start()


def agent_overlay(state: LabState, node: NodeState, plugins: list[str]) -> dict[str, Any]:
    """What the node's agent config gets on top for the VPP dataplane."""
    vpp = node_vpp(state, node, find_or_explain())
    with_vpp = list(plugins)
    if "vpp" not in with_vpp:
        # before the controller: VPP is connected before the start-up resync needs it
        with_vpp.insert(with_vpp.index("kvscheduler") + 1, "vpp")
    return {
        "plugins": with_vpp,
        "vpp": {"api_socket": vpp.api_socket, "api_dir": vpp.api_dir, "connect_timeout_s": 30},
        "ipnet": {"dataplane": "vpp", "vpp": {"pod_interface": "veth", "main_interface": "host-eth1"}},
        "ipam": {"node_interface": None, "node_interconnect_cidr": DATA_CIDR},
        "policy": {"renderer": "vpp-acl"},
    }


class VppDataplane:
    """A real VPP per node owning its data NIC (this module's functions)."""

    name = "vpp"

    def check(self) -> None:
        """Says so at once where no VPP is installed."""
        try:
            find_or_explain()
        except RuntimeError as err:
            raise LabError(str(err)) from None

    def prepare_node(self, state: LabState, node: NodeState) -> None:
        prepare_node(state, node)

    def agent_overlay(self, state: LabState, node: NodeState, plugins: list[str]) -> dict[str, Any]:
        return agent_overlay(state, node, plugins)

    def data_ip(self, node: NodeState) -> str:
        return data_ip(node)
