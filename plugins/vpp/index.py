"""Name <-> VPP index maps shared by the descriptors (Ligato's ``ifaceidx``/``bdidx``)."""

from __future__ import annotations


class NameIndex:
    """A two-way map between our names and VPP's numeric indexes."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._by_name: dict[str, int] = {}
        self._by_index: dict[int, str] = {}

    def put(self, name: str, index: int) -> None:
        old = self._by_name.pop(name, None)
        if old is not None:
            self._by_index.pop(old, None)
        self._by_name[name] = index
        self._by_index[index] = name

    def remove(self, name: str) -> None:
        index = self._by_name.pop(name, None)
        if index is not None:
            self._by_index.pop(index, None)

    def index(self, name: str) -> int | None:
        return self._by_name.get(name)

    def name(self, index: int) -> str | None:
        return self._by_index.get(index)

    def clear(self) -> None:
        self._by_name.clear()
        self._by_index.clear()

    def items(self) -> list[tuple[str, int]]:
        return sorted(self._by_name.items())

    def __len__(self) -> int:
        return len(self._by_name)


class Indexes:
    """The indexes of one VPP: interfaces (sw_if_index), bridge domains (bd_id), ACLs (acl_index)."""

    def __init__(self) -> None:
        self.interfaces = NameIndex("interface")
        self.bridge_domains = NameIndex("bridge domain")
        self.acls = NameIndex("ACL")
