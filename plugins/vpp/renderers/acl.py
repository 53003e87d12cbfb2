"""Policy rules -> VPP ACLs on the pods' interfaces (after Contiv's ACL renderer, contiv.md 3.9).

Input: the policy processor's changes (``Delta``: each local pod's address and rule sets, the
contents of the peer sets the rule sets reference), read structurally. For every isolated pod:

* its **ingress** rules become the **output** ACL of its VPP interface (what VPP sends to the
  pod: every path, same node or remote, after the services' DNAT); one PERMIT per (peer
  address or prefix) x (protocol, port range), a PERMIT from the NAT loopback address (a pod
  always reaches itself through a service), then one final DENY;
* its **egress** rules become the **input** ACL (what the pod sends), whose PERMITs are
  *reflective* so the replies pass the output ACL; a pod isolated on ingress only gets the
  shared reflective ACL ``pol-reflect`` (PERMIT+REFLECT any) on input instead, so replies to its
  own connections come back.

Rules are the processor's: an ipBlock's ``except`` is already subtracted into prefixes, a
named port is resolved per peer (``address . protocol . port``). ACLs are shared: the name is a
hash of the rendered rules, so pods with the same rules and peers use one ACL, and a pod
joining a peer set changes only the ACLs whose rules list it. Policies without
``policyTypes`` follow the API's defaulting in the processor (Ingress, plus Egress when the
policy has egress rules).

Deviation from Contiv (documented in docs/vpp.md): Contiv put every rule on the pods' egress
side and added a node-global ACL on the uplinks and the VXLAN BVI; here each pod's own
interface enforces both of its directions, so no global table is needed, but egress rules see
a service's virtual address (the input side comes before VPP's DNAT).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Any

from pydantic import BaseModel

from plugins.vpp.model import Acl, AclAction, AclInterface, AclRule, acl_interface_key, acl_key

PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}
ANY = IPv4Network("0.0.0.0/0")
REFLECT_ACL = Acl(name="pol-reflect", rules=(AclRule(action=AclAction.REFLECT),))
DENY_ALL = AclRule(action=AclAction.DENY)


def _acl_name(rules: tuple[AclRule, ...]) -> str:
    text = "\n".join(r.model_dump_json() for r in rules)
    return "pol-" + hashlib.sha1(text.encode()).hexdigest()[:16]


def _allows_everything(ruleset: Any) -> bool:
    return len(ruleset) == 1 and ruleset[0].peers is None and ruleset[0].ports is None and ruleset[0].named is None


class AclPolicyRenderer:
    """Keeps the local pods' rules and the peer sets' contents; renders the ACLs and ACL lists.

    ``interface_of(pod_key, ip)`` names the pod's VPP interface (None: not wired, skipped).
    """

    name = "vpp-acl"

    def __init__(
        self,
        interface_of: Callable[[str, str], str | None],
        nat_loopback: IPv4Address | Callable[[], IPv4Address | None] | None = None,
    ) -> None:
        self.interface_of = interface_of
        self._nat_loopback = nat_loopback
        self.pods: dict[str, Any] = {}
        self.contents: dict[str, Any] = {}
        self._keys: set[str] = set()
        self._removed: set[str] = set()
        # What the policy plugin's REST, gauges and internal state read (as of the nft renderer):
        self.ingress: dict[str, str] = {}  # pod IP -> output ACL
        self.egress: dict[str, str] = {}  # pod IP -> input ACL
        self.chains: dict[str, tuple[str, ...]] = {}  # ACL name -> its rules, as text
        self.set_refs: dict[str, int] = {}  # peer sets the rendered rules use

    def reset(self) -> None:
        self.pods.clear()
        self.contents.clear()
        self.values()  # everything not wanted any more becomes a removal

    def apply(self, delta: Any) -> None:
        """Take the processor's changes (pods' rules and addresses, set contents)."""
        for set_id, content in delta.sets.items():
            if content is None:
                self.contents.pop(set_id, None)
            else:
                self.contents[set_id] = content
        for key, pod in delta.pods.items():
            if pod is None:
                self.pods.pop(key, None)
            else:
                self.pods[key] = pod

    def put_into(self, txn: Any) -> None:
        """Put the desired ACLs and ACL lists into a controller transaction, delete the rest."""
        for key, value in self.values().items():
            txn.put(key, value)
        for key in self.take_removed():
            txn.delete(key)

    def values(self) -> Mapping[str, BaseModel]:
        """Every ACL in use and every isolated pod's ACL list (the renderer's desired state)."""
        out: dict[str, BaseModel] = {}
        self.ingress, self.egress, self.set_refs = {}, {}, {}
        for key, pod in sorted(self.pods.items()):
            iface = self.interface_of(key, pod.ip)
            ingress, egress = pod.rules.ingress, pod.rules.egress
            if iface is None or not pod.rules.isolated:
                continue
            inputs: tuple[str, ...] = ()
            outputs: tuple[str, ...] = ()
            if ingress is not None and not _allows_everything(ingress):
                acl = self._acl(self._ingress_rules(ingress))
                out[acl_key(acl.name)] = acl
                outputs = (acl.name,)
                self.ingress[pod.ip] = acl.name
            if egress is not None and not _allows_everything(egress):
                acl = self._acl(self._egress_rules(egress))
                out[acl_key(acl.name)] = acl
                inputs = (acl.name,)
                self.egress[pod.ip] = acl.name
            elif outputs:
                out[acl_key(REFLECT_ACL.name)] = REFLECT_ACL
                inputs = (REFLECT_ACL.name,)
            for rule in (*(ingress or ()), *(egress or ())):
                for ref in (rule.peers, rule.named):
                    if ref is not None:
                        self.set_refs[ref] = self.set_refs.get(ref, 0) + 1
            if inputs or outputs:
                out[acl_interface_key(iface)] = AclInterface(interface=iface, input=inputs, output=outputs)
        self.chains = {
            v.name: tuple(r.model_dump_json() for r in v.rules) for v in out.values() if isinstance(v, Acl)
        }
        self._removed |= self._keys - set(out)
        self._removed -= set(out)
        self._keys = set(out)
        return out

    def take_removed(self) -> list[str]:
        """Keys :meth:`values` no longer renders since the last call (the caller deletes them)."""
        removed, self._removed = sorted(self._removed), set()
        return removed

    # ------------------------------------------------------------------------------ rules

    def _acl(self, rules: tuple[AclRule, ...]) -> Acl:
        return Acl(name=_acl_name(rules), rules=rules)

    def _peers(self, set_id: str | None) -> list[IPv4Network]:
        if set_id is None:
            return [ANY]
        content = self.contents.get(set_id)
        if content is None:
            return []  # an unknown set stands for nobody
        return sorted({ip_network(e) for e in content.elements if ip_network(e).version == 4})  # type: ignore[misc]

    def _ingress_rules(self, ruleset: Iterable[Any]) -> tuple[AclRule, ...]:
        rules: list[AclRule] = []
        for rule in ruleset:
            for net in self._peers(rule.peers):
                rules += _with_ports(AclAction.PERMIT, rule.ports, src=net)
        loopback = self._nat_loopback() if callable(self._nat_loopback) else self._nat_loopback
        if loopback is not None:
            rules.append(AclRule(action=AclAction.PERMIT, src=IPv4Network(f"{loopback}/32")))
        return (*_unique(rules), DENY_ALL)

    def _egress_rules(self, ruleset: Iterable[Any]) -> tuple[AclRule, ...]:
        rules: list[AclRule] = []
        for rule in ruleset:
            if rule.named is not None:
                content = self.contents.get(rule.named)
                for element in sorted(content.elements if content is not None else ()):
                    addr, proto, port = _named(element)
                    rules.append(AclRule(action=AclAction.REFLECT, dst=IPv4Network(f"{addr}/32"),
                                         proto=PROTOCOLS.get(proto, 0), dst_first=port, dst_last=port))
                continue
            for net in self._peers(rule.peers):
                rules += _with_ports(AclAction.REFLECT, rule.ports, dst=net)
        return (*_unique(rules), DENY_ALL)


def _named(element: str) -> tuple[str, str, int]:
    """``10.1.1.2 . tcp . 8080`` -> (address, protocol, port)."""
    addr, proto, port = (part.strip() for part in element.split(" . "))
    return addr, proto, int(port)


def _with_ports(action: AclAction, ports: Any, **where: IPv4Network) -> list[AclRule]:
    if ports is None:
        return [AclRule(action=action, **where)]
    out = []
    for match in ports:
        proto = PROTOCOLS.get(match.protocol, 0)
        first, last = (0, 65535) if match.first == 0 else (match.first, match.last or match.first)
        out.append(AclRule(action=action, proto=proto, dst_first=first, dst_last=last, **where))
    return out


def _unique(rules: list[AclRule]) -> list[AclRule]:
    return list(dict.fromkeys(rules))
