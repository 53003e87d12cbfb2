"""The descriptor of agent-owned nftables tables (:class:`plugins.linux.nft.table.NftTableValue`).

Create, update and delete are each ONE nft batch (one kernel transaction); the creation of a
table with many elements is three, none of which traffic sees half-done (see ``create``). Read-back lists
only the tables the scheduler knows of (never the ruleset) and rebuilds the value from what the
kernel has, through the hash comments, so an unchanged table reads back equal to the desired
value (an agent restart writes nothing) and a table edited behind the agent's back reads back
different in exactly the parts that were touched (the update then repairs only those).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plugins.kvscheduler.api import (
    Descriptor,
    InvalidValueError,
    Origin,
    RetrievedValue,
    TransientError,
    ValueWithMetadata,
)
from plugins.linux.netns import NamespaceNotFoundError, namespace_label, validate_namespace_ref
from plugins.linux.nft import rawelements as nftraw
from plugins.linux.nft.driver import Nft, NftError, NftTable
from plugins.linux.nft.table import (
    FLAT,
    NFT_FAMILIES,
    NFT_TABLE_SPEC,
    OWNER,
    OWNER_SET,
    Element,
    NftChain,
    NftSet,
    NftTableValue,
    all_groups,
    bulk_elements,
    create_batch,
    create_batches,
    digest,
    element_changes,
    group_elements,
    update_batch,
)

#: Elements from which a new table's elements go over netlink (see ``create``).
BULK_MIN = 2000


class NftTableDescriptor(Descriptor[NftTableValue]):
    """``config/linux/v1/nft-table/<ns>/<family>/<name>``; ``backend`` as :class:`Nft`'s.

    ``writes`` counts the batches sent to the kernel (tests assert a no-op resync sends none).
    """

    name = "linux-nft-table"
    spec = NFT_TABLE_SPEC
    model = NftTableValue

    def __init__(self, backend: str = "lib", bulk_min: int | None = BULK_MIN) -> None:
        self.backend = backend
        #: A table created with at least this many elements in sets :mod:`plugins.linux.nft.rawelements`
        #: can encode has those written over netlink, and so does an update that changes such
        #: sets' elements only (None: never, everything through libnftables).
        self.bulk_min = bulk_min
        self.writes = 0
        #: Of ``writes``, those that went over netlink without libnftables.
        self.netlink_writes = 0
        self._nft: dict[str, Nft] = {}

    def nft(self, namespace: str) -> Nft:
        handle = self._nft.get(namespace)
        if handle is None:
            handle = self._nft[namespace] = Nft(namespace, self.backend)
        return handle

    def value_name(self, value: NftTableValue) -> str:
        return f"{namespace_label(value.namespace)}/{value.family}/{value.name}"

    def validate(self, key: str, value: NftTableValue) -> None:
        reason = validate_namespace_ref(value.namespace)
        if reason:
            raise InvalidValueError(key, reason)
        if value.family not in NFT_FAMILIES:
            raise InvalidValueError(key, f"unknown nftables family {value.family!r}")
        if not value.name or not value.name.replace("-", "").replace("_", "").isalnum():
            raise InvalidValueError(key, f"bad table name {value.name!r}")
        for name, chain in value.chains.items():
            if (chain.hook is None) != (chain.type is None):
                raise InvalidValueError(key, f"chain {name}: a base chain needs both type and hook")

    def update_needs_recreate(self, key: str, old: NftTableValue, new: NftTableValue) -> bool:
        return (old.namespace, old.family, old.name) != (new.namespace, new.family, new.name)

    async def _apply(self, namespace: str, batch: str) -> None:
        if not batch:
            return
        try:
            await self.nft(namespace).aapply(batch)
        except NamespaceNotFoundError as exc:
            raise TransientError(str(exc)) from exc
        self.writes += 1

    async def create(self, key: str, value: NftTableValue) -> None:
        """The whole table in one nft batch; a big one in three kernel transactions instead.

        libnftables parses ~10 us per element, so a table with many elements is created as:
        the table without its base chains and bulk elements (inert: nothing hooks into it),
        the bulk elements over netlink (:mod:`plugins.linux.nft.rawelements`, one transaction), then
        the base chains. Traffic sees one switch, from no table to the whole table. Only when
        no table of that name exists: replacing one stays a single transaction.
        """
        bulk = self._bulk(value)
        try:
            if bulk and not await self.nft(value.namespace).atable_exists(value.family, value.name):
                encoded = _encode(bulk)
                if encoded:
                    inert, hooks = create_batches(value, encoded)
                    await self._apply(value.namespace, inert)
                    try:
                        await nftraw.awrite(value.namespace, value.family, value.name, encoded)
                    except nftraw.NetlinkWriteError:
                        # Refused or unanswered: the inert table must not stay (the retry
                        # creates the whole table again; one left behind it replaces at once).
                        try:
                            await self.delete(key, value, None)
                        except NftError:
                            pass
                        raise
                    self.writes += 1
                    self.netlink_writes += 1
                    await self._apply(value.namespace, hooks)
                    return
        except NamespaceNotFoundError as exc:
            raise TransientError(str(exc)) from exc
        await self._apply(value.namespace, create_batch(value))

    def _bulk(self, value: NftTableValue) -> dict[str, tuple[nftraw.Layout, list[tuple[str, str]]]]:
        """The elements of the sets that may go over netlink, with their layouts ({} when fewer
        than ``bulk_min``)."""
        if self.bulk_min is None:
            return {}
        layouts = {n: lay for n, s in value.sets.items() if s.managed and (lay := nftraw.layout(s.decl))}
        if not layouts:
            return {}
        texts = bulk_elements(value, layouts)
        if sum(len(v) for v in texts.values()) < max(self.bulk_min, 1):
            return {}
        return {name: (layouts[name], elements) for name, elements in texts.items() if elements}

    async def update(self, key: str, old: NftTableValue, new: NftTableValue, metadata: Any) -> None:
        if self.bulk_min is not None and await self._update_elements(old, new):
            return
        batch = update_batch(old, new)
        await self._apply(new.namespace, create_batch(new) if batch is None else batch)

    async def _update_elements(self, old: NftTableValue, new: NftTableValue) -> bool:
        """A change of managed sets' elements alone (a service's frontends and backends) as one
        netlink transaction; False when something else changed or an element does not encode
        (then nft text does it all).

        libnftables reads the table's elements before it applies a change, so through it a
        change costs more as the table grows (one backend replaced at 10k services: 1.1-1.2 ms,
        against 0.6 ms here, docs/services.md); over netlink it costs the change."""
        changes = element_changes(old, new)
        if changes is None:
            return False
        deleted, added = changes
        fields = nftraw.Fields()
        encoded: tuple[dict[str, list[bytes]], dict[str, list[bytes]]] = ({}, {})
        for which, items in enumerate(({n: [(k, "") for k in keys] for n, keys in deleted.items()}, added)):
            for name, pairs in items.items():
                layout = nftraw.layout(new.sets[name].decl)
                found = None if layout is None else nftraw.encode(
                    layout.keys_only() if which == 0 else layout, pairs, fields)
                if found is None:
                    return False
                encoded[which][name] = found
        if any(encoded[0].values()) or any(encoded[1].values()):
            try:
                await nftraw.awrite(new.namespace, new.family, new.name, encoded[1], encoded[0])
            except NamespaceNotFoundError as exc:
                raise TransientError(str(exc)) from exc
            self.writes += 1
            self.netlink_writes += 1
        return True

    async def delete(self, key: str, value: NftTableValue, metadata: Any) -> None:
        try:
            await self._apply(value.namespace, f"delete table {value.family} {value.name}\n")
        except NftError as exc:
            if "No such file or directory" not in str(exc):
                raise
        except TransientError:
            pass  # the namespace is gone, and the table with it

    def is_retriable(self, error: Exception) -> bool:
        # A refused or unanswered element write (a kernel limit, a timeout) may pass later; no
        # retry would leave the node without the table until the next change.
        return isinstance(error, (TransientError, OSError, TimeoutError, nftraw.NetlinkWriteError))

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        found: list[RetrievedValue] = []
        for item in correlate:
            want = item.value
            assert isinstance(want, NftTableValue)
            try:
                table = await self.nft(want.namespace).alist_table(want.family, want.name)
            except NamespaceNotFoundError:
                continue
            if table is None:
                continue
            owner = table.sets.get(OWNER_SET)
            if owner is None or owner.comment != OWNER:
                found.append(RetrievedValue(item.key, NftTableValue(
                    namespace=want.namespace, family=want.family, name=want.name), origin=Origin.FROM_SB))
                continue
            found.append(RetrievedValue(item.key, read_back(table, want)))
        return found


def _encode(bulk: dict[str, tuple[nftraw.Layout, list[tuple[str, str]]]]) -> dict[str, list[bytes]]:
    """The elements encoded for netlink, by set; a set one of whose elements does not parse is
    left out (it goes with nft text)."""
    encoded = {}
    fields = nftraw.Fields()  # shared: one set's keys are the prefixes of another's
    for name, (layout, elements) in bulk.items():
        found = nftraw.encode(layout, elements, fields)
        if found is not None:
            encoded[name] = found
    return encoded


def read_back(table: NftTable, want: NftTableValue) -> NftTableValue:
    """The value of a table read back, expressed with ``want``'s texts where the hashes match."""
    sets: dict[str, NftSet] = {}
    for name, found in table.sets.items():
        if name == OWNER_SET:
            continue
        spec = want.sets.get(name)
        if spec is not None and found.comment == digest(name, spec.decl):
            sets[name] = spec
        else:
            sets[name] = NftSet(decl=f"<read back: {' . '.join(found.type)}, comment {found.comment}>")
    chains: dict[str, NftChain] = {}
    for name, chain in table.chains.items():
        spec_chain = want.chains.get(name)
        base = (chain.type, chain.hook, chain.prio or 0, chain.policy or "accept")
        comments = [r.comment for r in chain.rules]
        if (spec_chain is not None and spec_chain.base() == base
                and comments == [digest(name, rule) for rule in spec_chain.rules]):
            chains[name] = spec_chain
        else:
            chains[name] = NftChain(
                type=chain.type, hook=chain.hook, prio=chain.prio or 0, policy=chain.policy or "accept",
                rules=tuple(f"<read back: handle {r.handle}, comment {r.comment}>" for r in chain.rules))
    elements: list[Element] = []
    for name, found in table.sets.items():
        spec = sets.get(name)
        if spec is None or not spec.managed or name == OWNER_SET:
            continue
        elements.extend((name, key, value) for key, value in found.elements.items())
    grouped = group_elements(elements, all_groups(want))
    flat = grouped.pop(FLAT, {})
    if "" in grouped:  # elements no desired group owns: kept flat, under group ""
        flat = {**flat, **grouped.pop("")}
    return NftTableValue.model_construct(
        namespace=want.namespace, family=want.family, name=want.name, sets=sets, chains=chains,
        elements=want.elements if flat == want.elements else flat, buckets=grouped)
