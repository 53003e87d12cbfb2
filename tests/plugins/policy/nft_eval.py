"""A tiny interpreter of the rendered policy table (our rule text subset), for unit tests.

It evaluates a NEW connection the way the kernel walks the table: the source pod's egress chain
(``return`` goes on, ``drop`` ends), then the destination pod's ingress chain. Rules it does not
understand fail the test.
"""

from __future__ import annotations

import ipaddress

from plugins.linux.nft.table import NftTableValue


def _elements(table: NftTableValue, name: str) -> dict[str, str]:
    return {e[1]: e[2] for group in table.elements.values() for e in group if e[0] == name}


def _in_set(table: NftTableValue, name: str, key: str) -> bool:
    elements = _elements(table, name)
    if "interval" in table.sets[name].decl:
        addr = ipaddress.ip_address(key)
        return any(addr in ipaddress.ip_network(e) for e in elements)
    return key in elements


def _ports(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.strip("{} ").split(","):
        a, _, b = part.strip().partition("-")
        out.append((int(a), int(b or a)))
    return out


def _rule_matches(table: NftTableValue, rule: str, src: str, dst: str, proto: str, port: int) -> bool:
    rest = rule.rsplit(" ", 1)[0] if " " in rule else ""
    while rest:
        if rest.startswith("ip daddr . meta l4proto . th dport @"):
            name, _, rest = rest[len("ip daddr . meta l4proto . th dport @"):].partition(" ")
            if not _in_set(table, name, f"{dst} . {proto} . {port}"):
                return False
        elif rest.startswith(("ip saddr @", "ip daddr @")):
            addr = src if rest.startswith("ip saddr") else dst
            name, _, rest = rest[len("ip saddr @"):].partition(" ")
            if not _in_set(table, name, addr):
                return False
        elif rest.startswith("meta l4proto "):
            want, _, rest = rest[len("meta l4proto "):].partition(" ")
            if want != proto:
                return False
        elif rest.split(" ", 1)[0] in ("tcp", "udp", "sctp") and " dport " in rest:
            want, _, ports = rest.partition(" dport ")
            if want != proto:
                return False
            if ports.startswith("{"):
                text, _, rest = ports.partition("}")
                rest = rest.strip()
            else:
                text, _, rest = ports.partition(" ")
            if not any(a <= port <= b for a, b in _ports(text)):
                return False
        else:
            raise AssertionError(f"rule the test interpreter does not know: {rule!r}")
    return True


def run_chain(table: NftTableValue, chain: str, src: str, dst: str, proto: str, port: int) -> str:
    for rule in table.chains[chain].rules:
        verdict = rule.rsplit(" ", 1)[-1]
        if _rule_matches(table, rule, src, dst, proto, port):
            return verdict
    return "return"


def allowed(src_table: NftTableValue, dst_table: NftTableValue, src: str, dst: str,
            proto: str, port: int) -> bool:
    """Would a new connection pass the source node's egress and the destination's ingress?"""
    chain = _elements(src_table, "egress").get(src)
    if chain is not None and run_chain(src_table, chain.removeprefix("jump "), src, dst, proto, port) == "drop":
        return False
    chain = _elements(dst_table, "ingress").get(dst)
    if chain is not None:
        return run_chain(dst_table, chain.removeprefix("jump "), src, dst, proto, port) == "accept"
    return True
