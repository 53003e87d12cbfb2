"""The node itself to services through VPP (shared by the VPP service renderers).

On the VPP dataplane the node's own network namespace (and so every hostNetwork pod) sits
behind the host interconnect (Linux ``vpp1`` ``172.30.N.2`` <-> VPP ``172.30.N.1``). What it
sends to a service must reach VPP, whose translations (NAT44 mappings or cnat translations)
balance it exactly as they balance a pod's traffic. Contiv/VPP routed the service network from
the host into VPP; here, in the node namespace:

* a route of the **service network** via VPP's end of the interconnect (ClusterIPs);
* a /32 route per **ExternalIP / LoadBalancer IP** via VPP (outside the service network);
* **NodePorts**: the node's addresses are the node's own (or another node's, reached over the
  management network), so routing cannot send them into VPP. The agent-owned nftables table
  (``service.table``, family ``ip``) DNATs ``<node address>:<NodePort>`` to VPP's interconnect
  address, same port, from the node's own sockets (``output``) and from traffic arriving at
  the node's Linux-owned addresses (``prerouting``), and SNATs it to the node's interconnect
  address so the replies come back the same way (forwarding is on in the node namespace).
  Only the frontends VPP balances are in the set (its own addresses, and other nodes' for
  cluster-wide services, as the processor gives them).
  VPP gets a **host frontend** per NodePort: ``<VPP interconnect address>:<NodePort>`` with the
  translation of the node's own NodePort (same backends, weights, affinity and traffic policy).

The backends see the node's interconnect address (``172.30.N.2``): the node's identity towards
pods on VPP, as for every other connection the node opens to a pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address

from pydantic import BaseModel

from plugins.kvscheduler.removed import RemovedKeys
from plugins.linux.models import Route, Sysctl, value_key
from plugins.linux.nft.table import Element, NftChain, NftSet, NftTableValue, table_key
from plugins.service.intent import Frontend, FrontendKind, ServiceIntent, ServicePortIntent

#: Packet mark of connections DNATed into VPP (SNATed to the interconnect address on the way out).
HOST_MARK = 0x4000
EXTERNAL_KINDS = frozenset({FrontendKind.EXTERNAL_IP, FrontendKind.LOAD_BALANCER})
_NP = "ip daddr . meta l4proto . th dport @np"


def is_own_node_port(frontend: Frontend) -> bool:
    """A NodePort on one of this node's own addresses: the processor gives those the service's
    external traffic policy (``local_only`` with Local, ``masquerade`` with Cluster); another
    node's NodePort answered here has neither."""
    return frontend.kind == FrontendKind.NODE_PORT and (frontend.local_only or frontend.masquerade)


@dataclass(frozen=True)
class HostSide:
    """Where the node's namespace meets VPP (see the module docstring)."""

    namespace: str
    ifname: str
    vswitch: IPv4Interface
    host: IPv4Interface
    service_network: IPv4Network
    table_name: str

    @property
    def vswitch_ip(self) -> IPv4Address:
        return self.vswitch.ip

    def route(self, dst: IPv4Network) -> tuple[str, Route]:
        value = Route(namespace=self.namespace, dst=dst, gateway=self.vswitch.ip, dev=self.ifname)
        return value_key(value), value

    def static_values(self) -> dict[str, BaseModel]:
        """The service network's route (always there, as the rest of the interconnect), and
        forwarding on in the node namespace (a NodePort arriving at a Linux-owned address is
        forwarded into VPP, as on any Kubernetes node)."""
        forward = Sysctl(namespace=self.namespace, name="net.ipv4.ip_forward", value="1")
        return dict([self.route(self.service_network), (value_key(forward), forward)])

    def service_values(self, intent: ServiceIntent, translated: Iterable[Frontend]) -> dict[str, BaseModel]:
        """The /32 routes of the ExternalIPs and LoadBalancer IPs VPP translates."""
        out: dict[str, BaseModel] = {}
        for fe in translated:
            ip = ip_address(fe.ip)
            if fe.kind in EXTERNAL_KINDS and ip.version == 4 and ip not in self.service_network:
                key, value = self.route(IPv4Network(f"{ip}/32"))
                out[key] = value
        return out

    def node_port_elements(self, translated: Iterable[Frontend]) -> tuple[Element, ...]:
        """The ``np`` set's elements of one service: its NodePorts VPP translates."""
        found: dict[Element, None] = {}
        for fe in translated:
            if fe.kind == FrontendKind.NODE_PORT and ip_address(fe.ip).version == 4:
                found[("np", f"{fe.ip} . {fe.protocol} . {fe.port}", "")] = None
        return tuple(found)

    def table_key(self) -> str:
        return table_key(self.namespace, "ip", self.table_name)

    def table(self, groups: dict[str, tuple[Element, ...]]) -> NftTableValue:
        vpp, mark = self.vswitch.ip, f"{HOST_MARK:#x}"
        dnat = f"{_NP} meta mark set meta mark | {mark} dnat ip to {vpp}"
        chains = {
            "out": NftChain(type="nat", hook="output", prio=-100, rules=(dnat,)),
            "pre": NftChain(type="nat", hook="prerouting", prio=-100,
                            rules=(f'iifname != "{self.ifname}" fib daddr type local {dnat}',)),
            "post": NftChain(type="nat", hook="postrouting", prio=100,
                             rules=(f"meta mark & {mark} == {mark} snat ip to {self.host.ip}",)),
        }
        sets = {"np": NftSet(decl="type ipv4_addr . inet_proto . inet_service;")}
        return NftTableValue(namespace=self.namespace, family="ip", name=self.table_name, sets=sets, chains=chains,
                             elements={k: v for k, v in groups.items() if v})


class TranslationRenderer:
    """What the VPP service renderers share: one value per translated frontend, grouped by
    service, plus the host side; ``values()`` is the whole desired state, ``take_removed()`` the
    keys no service needs any more (to delete). Subclasses give :meth:`render` (the service's
    translations by key, the host frontends included) and :meth:`translates`."""

    def __init__(self, host: HostSide | None) -> None:
        self.host = host
        self._by_service: dict[str, dict[str, BaseModel]] = {}
        self._node_ports: dict[str, tuple[Element, ...]] = {}
        self._removed = RemovedKeys()

    def render(self, intent: ServiceIntent) -> Mapping[str, BaseModel]:
        raise NotImplementedError

    def translates(self, port: ServicePortIntent, frontend: Frontend) -> bool:
        raise NotImplementedError

    def set_service(self, key: str, intent: ServiceIntent | None) -> None:
        old = self._by_service.pop(key, {})
        self._node_ports.pop(key, None)
        new: dict[str, BaseModel] = {}
        if intent is not None:
            new.update(self.render(intent))
            if self.host is not None:
                translated = [fe for port in intent.ports for fe in port.frontends if self.translates(port, fe)]
                new.update(self.host.service_values(intent, translated))
                self._node_ports[key] = self.host.node_port_elements(translated)
        if new:
            self._by_service[key] = new
        still = {k for values in self._by_service.values() for k in values}
        self._removed.replaced(old, still)

    def values(self) -> Mapping[str, BaseModel]:
        out: dict[str, BaseModel] = {}
        if self.host is not None:
            out.update(self.host.static_values())
            out[self.host.table_key()] = self.host.table(self._node_ports)
        for values in self._by_service.values():
            out.update(values)
        return out

    def take_removed(self) -> list[str]:
        """Keys of values dropped since the last call (the caller deletes them)."""
        return self._removed.take()
