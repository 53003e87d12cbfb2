"""An agent-owned nftables table as ONE scheduler value, and the batches that apply it.

:class:`NftTableValue` is the whole table: set/map declarations, chains with their rules, and
the elements of the sets and maps, grouped (a group is what one producer owns, e.g. one
service; a ``(set, key)`` must appear in one group only). Its descriptor
(:class:`plugins.linux.descriptors.nfttable.NftTableDescriptor`) turns every change of the value
into ONE nft batch, so a scheduler transaction is one atomic kernel transaction (except the
creation of a table with many elements: :func:`create_batches`):

* :func:`create_batch`: the table from scratch (``add table`` + ``delete table`` first, so
  whatever a crash left under that name goes in the same transaction);
* :func:`update_batch`: only the difference - element deletes and adds of the groups that
  changed (groups are compared by identity first, so a change of one group among 10k costs
  microseconds), chains whose rules changed are flushed and refilled, sets and chains that
  appeared or went are added or deleted. A base chain whose hook or priority changed, or a set
  whose declaration changed, makes the batch rebuild the table instead.

Ownership and read-back: every set and rule carries a comment with a hash of its desired text
(``h:<12 hex>``); the table has a set ``contiv_owner`` whose comment is :data:`OWNER`. Read-back
maps what it finds to the desired text through those hashes (see the descriptor).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict

from core.naming import short_hash
from plugins.kvscheduler.api import ModelSpec
from plugins.linux.netns import namespace_label

NFT_TABLE_SPEC = ModelSpec("linux", "v1", "nft-table")
OWNER = "contiv-agent"
#: nftables families by name, with their numbers (``NFPROTO_*``).
NFT_FAMILIES = MappingProxyType({"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10})
OWNER_SET = "contiv_owner"

#: One element: (set or map name, key in nft syntax, value in nft syntax or "" for a set).
Element = tuple[str, str, str]
#: group -> its elements; the table's elements are bucket -> Groups (see NftTableValue).
Groups = dict[str, tuple[Element, ...]]


class NftChain(BaseModel):
    """A chain: a base chain when ``hook`` is set (``type``, ``hook``, ``prio``, ``policy``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str | None = None
    hook: str | None = None
    prio: int = 0
    policy: str = "accept"
    rules: tuple[str, ...] = ()

    def base(self) -> tuple[str | None, str | None, int, str]:
        return (self.type, self.hook, self.prio if self.hook else 0, self.policy if self.hook else "accept")


class NftSet(BaseModel):
    """A set or map declaration body (``type ...; flags ...;``), without its comment.

    ``managed`` False: the dataplane fills it (``update @set`` from a rule, e.g. affinity with
    timeouts); its elements are neither written nor compared.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    decl: str
    managed: bool = True


class NftTableValue(BaseModel):
    """``config/linux/v1/nft-table/<ns>/<family>/<name>``: a whole agent-owned table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = ""
    family: str = "ip"
    name: str
    sets: dict[str, NftSet] = {}
    chains: dict[str, NftChain] = {}
    #: group -> elements.
    elements: Groups = {}
    #: More groups, spread over buckets (bucket -> group -> elements): a producer with 10k groups
    #: publishes a new value per change by copying one small bucket (copy-on-write) instead of
    #: a dict of every group. How groups are spread over buckets is the producer's choice.
    buckets: dict[str, Groups] = {}


#: The pseudo-bucket of :attr:`NftTableValue.elements` in the functions below.
FLAT = "\0flat"


def all_groups(value: NftTableValue) -> dict[str, Groups]:
    """Every group of the value by bucket (``elements`` under :data:`FLAT`)."""
    return {FLAT: value.elements, **value.buckets}


def table_key(namespace: str, family: str, name: str) -> str:
    return f"{NFT_TABLE_SPEC.key_prefix}{namespace_label(namespace)}/{family}/{name}"


def digest(*parts: str) -> str:
    """The ``h:<12 hex>`` comment of a set declaration or a rule."""
    return "h:" + short_hash("\0".join(parts))


def _elements_cmds(verb: str, where: str, items: Mapping[str, list[str]]) -> list[str]:
    cmds = []
    for set_name, texts in sorted(items.items()):
        for start in range(0, len(texts), 5000):  # keep each command's text moderate
            cmds.append(f"{verb} element {where} {set_name} {{ {', '.join(texts[start:start + 5000])} }}")
    return cmds


def _chain_decl(where: str, name: str, chain: NftChain) -> str:
    if chain.hook is None:
        return f"add chain {where} {name}"
    return (f"add chain {where} {name} {{ type {chain.type} hook {chain.hook} priority {chain.prio}; "
            f"policy {chain.policy}; }}")


def _rules(where: str, name: str, chain: NftChain) -> list[str]:
    return [f'add rule {where} {name} {rule} comment "{digest(name, rule)}"' for rule in chain.rules]


def _set_decl(where: str, name: str, spec: NftSet) -> str:
    kind = "map" if " : " in spec.decl else "set"
    return f'add {kind} {where} {name} {{ {spec.decl} comment "{digest(name, spec.decl)}"; }}'


def _element_text(element: Element) -> str:
    return f"{element[1]} : {element[2]}" if element[2] else element[1]


def create_batch(value: NftTableValue) -> str:
    """The nft text creating the whole table (replacing any table of that name)."""
    inert, hooks = create_batches(value)
    return inert + hooks


def create_batches(value: NftTableValue, bulk: Collection[str] = ()) -> tuple[str, str]:
    """:func:`create_batch` in two parts, for a table whose elements of the sets named in
    ``bulk`` are written another way in between (:mod:`plugins.linux.nft.rawelements`): the table with
    its sets, regular chains and the other elements (nothing hooks into it yet, so traffic does
    not see it), then the base chains (traffic sees the whole table at once)."""
    where = f"{value.family} {value.name}"
    lines = [f"add table {where}", f"delete table {where}", f"add table {where}",
             f'add set {where} {OWNER_SET} {{ type mark; comment "{OWNER}"; }}']
    lines += [_set_decl(where, n, s) for n, s in value.sets.items()]
    regular = {n: c for n, c in value.chains.items() if c.hook is None}
    base = {n: c for n, c in value.chains.items() if c.hook is not None}
    lines += [_chain_decl(where, n, c) for n, c in regular.items()]
    for name, chain in regular.items():
        lines += _rules(where, name, chain)
    adds: dict[str, list[str]] = defaultdict(list)
    managed = {n for n, s in value.sets.items() if s.managed} - set(bulk)
    for bucket in all_groups(value).values():
        for group in bucket.values():
            for element in group:
                if element[0] in managed:
                    adds[element[0]].append(_element_text(element))
    lines += _elements_cmds("add", where, adds)
    hooks = [_chain_decl(where, n, c) for n, c in base.items()]
    for name, chain in base.items():
        hooks += _rules(where, name, chain)
    return "\n".join(lines) + "\n", "\n".join(hooks) + "\n" if hooks else ""


def bulk_elements(value: NftTableValue, names: Collection[str]) -> dict[str, list[tuple[str, str]]]:
    """The (key, data) of every element of the sets named, by set (see :func:`create_batches`)."""
    out: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
    for bucket in all_groups(value).values():
        for group in bucket.values():
            for element in group:
                found = out.get(element[0])
                if found is not None:
                    found.append((element[1], element[2]))
    return out


Pair = tuple[str, str]  # (bucket, group)
_HINTS: deque[tuple[NftTableValue, NftTableValue, frozenset[Pair]]] = deque(maxlen=16)


def note_changes(old: NftTableValue, new: NftTableValue, groups: Iterable[Pair]) -> None:
    """Tell :func:`update_batch` that ``new`` differs from ``old`` in these (bucket, group) only.

    A producer that changes one group among 10k knows which one; without a hint the diff
    visits every group (identity checks, about 1 us each). Hints are matched by identity of
    both values and are only an optimisation: an unknown pair falls back to the full diff.
    """
    _HINTS.append((old, new, frozenset(groups)))


def _hinted(old: NftTableValue, new: NftTableValue) -> frozenset[Pair] | None:
    groups: set[Pair] = set()
    target = new
    for _ in range(len(_HINTS)):
        step = next(((o, g) for o, n, g in reversed(_HINTS) if n is target), None)
        if step is None:
            return None
        groups |= step[1]
        if step[0] is old:
            return frozenset(groups)
        target = step[0]
    return None


def element_diff(
    old: Mapping[str, Groups], new: Mapping[str, Groups], groups: Iterable[Pair] | None = None,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(deletes, adds) per set, in nft text, between two bucketed element maps (only the
    (bucket, group) pairs named, when given)."""
    deletes, adds = _diff(old, new, groups)
    return deletes, {name: [_element_text(e) for e in elements] for name, elements in adds.items()}


def _diff(
    old: Mapping[str, Groups], new: Mapping[str, Groups], groups: Iterable[Pair] | None,
) -> tuple[dict[str, list[str]], dict[str, list[Element]]]:
    deletes: dict[str, list[str]] = defaultdict(list)
    adds: dict[str, list[Element]] = defaultdict(list)
    added_keys: set[tuple[str, str]] = set()
    empty: Groups = {}
    if groups is None:
        pairs: list[Pair] = []
        for b in old.keys() | new.keys():
            old_b, new_b = old.get(b, empty), new.get(b, empty)
            if old_b is not new_b:
                pairs.extend((b, g) for g in old_b.keys() | new_b.keys())
        groups = pairs
    for b, group in groups:
        before, after = old.get(b, empty).get(group, ()), new.get(b, empty).get(group, ())
        if before is after or before == after:
            continue
        was, now = set(before), set(after)
        for element in was - now:
            deletes[element[0]].append(element[1])
        for element in now - was:
            if (element[0], element[1]) not in added_keys:
                added_keys.add((element[0], element[1]))
                adds[element[0]].append(element)
    return deletes, adds


def _same_structure(old: NftTableValue, new: NftTableValue) -> bool:
    """Whether the sets both have are declared alike and the chains both have hook alike
    (else the table is rebuilt)."""
    for name in old.sets.keys() & new.sets.keys():
        if old.sets[name] != new.sets[name]:
            return False
    return all(old.chains[n].base() == new.chains[n].base() for n in old.chains.keys() & new.chains.keys())


def element_changes(
    old: NftTableValue, new: NftTableValue,
) -> tuple[dict[str, list[str]], dict[str, list[tuple[str, str]]]] | None:
    """When ``old`` and ``new`` differ in managed sets' elements only: (deleted keys, added
    (key, data)) per set; else None. The usual change of a service (its frontend and backend
    elements), which can go to the kernel without nft's parser (and without the cache of
    every element that libnftables reads first)."""
    if old.sets.keys() != new.sets.keys() or old.chains != new.chains or not _same_structure(old, new):
        return None
    managed = {n for n, s in new.sets.items() if s.managed}
    deletes, adds = _diff(all_groups(old), all_groups(new), _hinted(old, new))
    return ({name: keys for name, keys in deletes.items() if name in managed},
            {name: [(e[1], e[2]) for e in elements] for name, elements in adds.items() if name in managed})


def update_batch(old: NftTableValue, new: NftTableValue) -> str | None:
    """The nft text turning ``old`` into ``new`` in place; None when the table must be rebuilt."""
    where = f"{new.family} {new.name}"
    if not _same_structure(old, new):
        return None
    managed = {n for n, s in new.sets.items() if s.managed}
    deletes, adds = element_diff(all_groups(old), all_groups(new), _hinted(old, new))
    gone_sets = old.sets.keys() - new.sets.keys()
    deletes = {s: keys for s, keys in deletes.items()
               if s not in gone_sets and s in old.sets and old.sets[s].managed}
    adds = {s: texts for s, texts in adds.items() if s in managed}
    changed = [n for n in old.chains.keys() & new.chains.keys() if old.chains[n].rules != new.chains[n].rules]
    gone_chains = sorted(old.chains.keys() - new.chains.keys())
    new_chains = sorted(new.chains.keys() - old.chains.keys())
    lines = _elements_cmds("delete", where, deletes)
    lines += [f"flush chain {where} {n}" for n in sorted(changed) + gone_chains]
    lines += [f"delete chain {where} {n}" for n in gone_chains]
    lines += [f"delete set {where} {n}" for n in sorted(gone_sets)]
    lines += [_set_decl(where, n, new.sets[n]) for n in sorted(new.sets.keys() - old.sets.keys())]
    lines += [_chain_decl(where, n, new.chains[n]) for n in new_chains]
    for name in sorted(changed) + new_chains:
        lines += _rules(where, name, new.chains[name])
    lines += _elements_cmds("add", where, adds)
    return "\n".join(lines) + "\n" if lines else ""


def group_elements(found: Iterable[Element], desired: Mapping[str, Groups]) -> dict[str, Groups]:
    """Bucket and group elements read back like ``desired`` does (unknown ones: bucket and
    group ``""``).

    A group found exactly as desired is returned as the desired tuple itself, and a bucket
    found exactly as desired as the desired dict, so comparing the read-back value with the
    desired one is cheap and exact.
    """
    owner: dict[tuple[str, str], Pair] = {}
    for b, groups in desired.items():
        for group, elements in groups.items():
            for element in elements:
                owner[(element[0], element[1])] = (b, group)
    grouped: dict[Pair, list[Element]] = defaultdict(list)
    for element in found:
        grouped[owner.get((element[0], element[1]), ("", ""))].append(element)
    result: dict[str, Groups] = defaultdict(dict)
    for (b, group), items in grouped.items():
        want = desired.get(b, {}).get(group)
        if want is not None and len(want) == len(items) and set(want) == set(items):
            result[b][group] = want
        else:
            result[b][group] = tuple(sorted(items))
    return {b: desired[b] if b in desired and groups == desired[b] else groups for b, groups in result.items()}
