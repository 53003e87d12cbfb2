"""The policy table: one nftables table per node namespace, as ONE KV-scheduler value.

Layout (family ``inet``, default name ``contiv-policy``)::

    map ingress { type ipv4_addr : verdict }     local pod address -> jump i-<ruleset>
    map egress  { type ipv4_addr : verdict }     local pod address -> jump e-<ruleset>
    set p-<def> { type ipv4_addr [; flags interval] }            peer addresses
    set n-<def> { type ipv4_addr . inet_proto . inet_service }  egress to named ports
    chain i-<ruleset> { ... accept; drop }       one chain per distinct rule set, shared
    chain e-<ruleset> { ... return; drop }
    chain forward { type filter hook forward priority filter; policy accept;
                    ct state established,related accept
                    ip saddr vmap @egress
                    ip daddr vmap @ingress }

The whole table is one value so that one scheduler transaction is one atomic ``nft``
transaction: :class:`PolicyTableDescriptor` ``update`` writes only the difference between the
old and the new value (set elements, map elements, new and obsolete chains). On a resync the
scheduler compares the read-back table with the desired one and ``update`` repairs only what
differs. Rules are kept as text in the canonical form :func:`parse_rule` produces from nft's
JSON, so read-back compares equal to what was written.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from plugins.kvscheduler.api import (
    InvalidValueError,
    ModelSpec,
    Origin,
    RetrievedValue,
    ValueWithMetadata,
)
from plugins.linux.descriptors.base import LinuxDescriptor
from plugins.linux.netns import NamespaceNotFoundError, namespace_exists, namespace_label
from plugins.linux.nft import Nft, NftTable

POLICY_TABLE_SPEC = ModelSpec("linux", "v1", "nft-policy-table")
DEFAULT_TABLE = "contiv-policy"
FAMILY = "inet"
SET_TYPES = {
    "addr": "ipv4_addr",
    "interval": "ipv4_addr",
    "named": "ipv4_addr . inet_proto . inet_service",
}
#: The base chain's rules: replies first, then the source pod's egress, then the destination's
#: ingress. Egress chains ``return`` when allowed so the ingress lookup still runs.
BASE_RULES = (
    "ct state established,related accept",
    "ip saddr vmap @egress",
    "ip daddr vmap @ingress",
)


SetKind = Literal["addr", "interval", "named"]


class NftSet(BaseModel):
    """A named set: ``kind`` addr, interval (prefixes) or named (address . proto . port)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: SetKind
    elements: frozenset[str] = frozenset()


class NftPolicyTable(BaseModel):
    """The whole policy table of one namespace (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    namespace: str = ""
    name: str = DEFAULT_TABLE
    base: tuple[str, ...] = BASE_RULES
    chains: dict[str, tuple[str, ...]] = {}
    sets: dict[str, NftSet] = {}
    ingress: dict[str, str] = {}
    egress: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError(f"bad nftables table name {value!r}")
        return value


# ------------------------------------------------------------------ rule text

def port_text(ranges: Iterable[tuple[int, int]]) -> str:
    """Ports as nft writes them back: adjacent ranges merged, a set only for several."""
    merged: list[list[int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in merged]
    return parts[0] if len(parts) == 1 else "{ " + ", ".join(parts) + " }"


def rule_text(peer: str | None, direction: str, protocol: str | None,
              ports: Sequence[tuple[int, int]] | None, verdict: str) -> str:
    """One rule: ``peer`` set name (None: any), ``direction`` saddr/daddr, ``protocol`` with
    ``ports`` (None: every port of it), ``verdict`` accept/return/drop."""
    parts = []
    if peer is not None:
        parts.append(f"ip {direction} @{peer}")
    if protocol is not None:
        parts.append(f"{protocol} dport {port_text(ports)}" if ports else f"meta l4proto {protocol}")
    parts.append(verdict)
    return " ".join(parts)


def named_rule_text(set_name: str, verdict: str) -> str:
    return f"ip daddr . meta l4proto . th dport @{set_name} {verdict}"


def _value(v: Any) -> str:
    if isinstance(v, dict):
        if "set" in v:
            items = [_value(x) for x in v["set"]]
            return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"
        if "range" in v:
            return f"{v['range'][0]}-{v['range'][1]}"
        if "prefix" in v:
            return f"{v['prefix']['addr']}/{v['prefix']['len']}"
        if "concat" in v:
            return " . ".join(_value(x) for x in v["concat"])
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)


def _left(v: dict[str, Any]) -> str:
    if "payload" in v:
        p = v["payload"]
        return f"{p['protocol']} {p['field']}"
    if "meta" in v:
        return f"meta {v['meta']['key']}"
    if "ct" in v:
        return f"ct {v['ct']['key']}"
    if "concat" in v:
        return " . ".join(_left(x) for x in v["concat"])
    raise ValueError(json.dumps(v))


def parse_rule(exprs: list[dict[str, Any]]) -> str:
    """nft's JSON of a rule -> our canonical text; an unknown shape gives a text that never
    equals a desired rule (so the chain gets rewritten)."""
    parts = []
    try:
        for e in exprs:
            if "match" in e:
                m = e["match"]
                parts.append(f"{_left(m['left'])} {_value(m['right'])}")
            elif "vmap" in e:
                parts.append(f"{_left(e['vmap']['key'])} vmap {e['vmap']['data']}")
            elif len(e) == 1 and next(iter(e)) in ("accept", "drop", "return"):
                parts.append(next(iter(e)))
            elif "counter" in e:
                continue
            else:
                raise ValueError(json.dumps(e))
    except (KeyError, ValueError, TypeError, IndexError):
        return "<unknown> " + json.dumps(exprs, sort_keys=True)
    return " ".join(parts)


def parse_table(namespace: str, read: NftTable) -> NftPolicyTable:
    """Our model of a table the driver read back."""
    sets: dict[str, NftSet] = {}
    maps: dict[str, dict[str, str]] = {"ingress": {}, "egress": {}}
    for name, s in read.sets.items():
        if s.kind == "map":
            maps[name] = {k: v.removeprefix("jump ") for k, v in s.elements.items()}
        else:
            kind: SetKind = "named" if len(s.type) > 1 else (
                "interval" if "interval" in s.flags else "addr")
            sets[name] = NftSet(kind=kind, elements=frozenset(s.elements))
    chains: dict[str, tuple[str, ...]] = {}
    base: tuple[str, ...] = ("<missing>",)
    for name, chain in read.chains.items():
        rules = tuple(parse_rule(r.expr) for r in chain.rules)
        if name == "forward":
            if (chain.hook, chain.type, chain.prio, chain.policy) == ("forward", "filter", 0, "accept"):
                base = rules
        else:
            chains[name] = rules
    return NftPolicyTable(
        namespace=namespace, name=read.name, base=base, chains=chains, sets=sets,
        ingress=maps.get("ingress", {}), egress=maps.get("egress", {}),
    )


# ------------------------------------------------------------------ batches

def _elements(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


def create_script(table: NftPolicyTable) -> list[str]:
    """The whole table from scratch (replacing any table of that name), as one batch."""
    t = f"{FAMILY} {table.name}"
    lines = [f"add table {t}", f"delete table {t}", f"add table {t}",
             f"add map {t} ingress {{ type ipv4_addr : verdict; }}",
             f"add map {t} egress {{ type ipv4_addr : verdict; }}"]
    diff = diff_script(NftPolicyTable(namespace=table.namespace, name=table.name, base=()), table)
    lines += [f"add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}"]
    lines += diff
    return lines


def diff_script(old: NftPolicyTable, new: NftPolicyTable) -> list[str]:
    """The commands that turn table ``old`` into ``new``, writing only what differs."""
    t = f"{FAMILY} {new.name}"
    out: list[str] = []
    for name, s in sorted(new.sets.items()):
        was = old.sets.get(name)
        if was is None:
            flags = "; flags interval" if s.kind == "interval" else ""
            out.append(f"add set {t} {name} {{ type {SET_TYPES[s.kind]}{flags}; }}")
            added = s.elements
        else:
            gone = was.elements - s.elements
            if gone:
                out.append(f"delete element {t} {name} {{ {_elements(gone)} }}")
            added = s.elements - was.elements
        if added:
            out.append(f"add element {t} {name} {{ {_elements(added)} }}")
    for name, rules in sorted(new.chains.items()):
        was_rules = old.chains.get(name)
        if was_rules == rules:
            continue
        out.append(f"add chain {t} {name}")
        if was_rules is not None:
            out.append(f"flush chain {t} {name}")
        out += [f"add rule {t} {name} {rule}" for rule in rules]
    for side in ("egress", "ingress"):
        old_map, new_map = getattr(old, side), getattr(new, side)
        unmapped = [ip for ip, chain in old_map.items() if new_map.get(ip) != chain]
        if unmapped:
            out.append(f"delete element {t} {side} {{ {_elements(unmapped)} }}")
        mapped = [f"{ip} : jump {chain}" for ip, chain in new_map.items() if old_map.get(ip) != chain]
        if mapped:
            out.append(f"add element {t} {side} {{ {_elements(mapped)} }}")
    if old.base != new.base:
        out.append(f"flush chain {t} forward")
        out += [f"add rule {t} forward {rule}" for rule in new.base]
    for name in sorted(set(old.chains) - set(new.chains)):
        out += [f"flush chain {t} {name}", f"delete chain {t} {name}"]
    for name in sorted(set(old.sets) - set(new.sets)):
        out.append(f"delete set {t} {name}")
    return out


def needs_rewrite(old: NftPolicyTable, new: NftPolicyTable) -> bool:
    """A table read back in a shape ``diff_script`` cannot patch (a set of another type, no
    base chain): rewrite it whole."""
    return "<missing>" in old.base or any(
        name in new.sets and new.sets[name].kind != s.kind for name, s in old.sets.items())


class PolicyTableDescriptor(LinuxDescriptor):
    """``config/linux/v1/nft-policy-table/<ns>/<table>``: the whole table, one value.

    Ownership: the table's name is ours (``contiv-policy`` by default); nothing else in the
    namespace is read or touched.
    """

    name = "linux-nft-policy-table"
    spec = POLICY_TABLE_SPEC
    model = NftPolicyTable

    def value_name(self, value: NftPolicyTable) -> str:
        return f"{namespace_label(value.namespace)}/{value.name}"

    def validate(self, key: str, value: NftPolicyTable) -> None:
        for ip, chain in (*value.ingress.items(), *value.egress.items()):
            if chain not in value.chains:
                raise InvalidValueError(key, f"{ip} jumps to chain {chain!r}, which the table lacks")

    def update_needs_recreate(self, key: str, old: NftPolicyTable, new: NftPolicyTable) -> bool:
        return (old.namespace, old.name) != (new.namespace, new.name)

    async def create(self, key: str, value: NftPolicyTable) -> None:
        await Nft(value.namespace).aapply("\n".join(create_script(value)))

    async def update(self, key: str, old: NftPolicyTable, new: NftPolicyTable, metadata: Any) -> None:
        if needs_rewrite(old, new):
            await self.create(key, new)
            return
        script = diff_script(old, new)
        if script:
            await Nft(new.namespace).aapply("\n".join(script))

    async def delete(self, key: str, value: NftPolicyTable, metadata: Any) -> None:
        try:
            await asyncio.to_thread(Nft(value.namespace).delete_table, FAMILY, value.name)
        except NamespaceNotFoundError:
            return

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        wanted: dict[tuple[str, str], str] = {}
        for item in correlate:
            if isinstance(item.value, NftPolicyTable):
                wanted[(item.value.namespace, item.value.name)] = item.key
        for ns in ("", *self.extra_namespaces):
            wanted.setdefault((ns, DEFAULT_TABLE), "")
        found = []
        for (ns, name), key in sorted(wanted.items()):
            if not namespace_exists(ns):
                continue
            try:
                read = await Nft(ns).alist_table(FAMILY, name)
            except NamespaceNotFoundError:
                continue
            if read is None:
                continue
            table = parse_table(ns, read)
            found.append(RetrievedValue(key or self.key_of(table), table, None, Origin.FROM_NB))
        return found
