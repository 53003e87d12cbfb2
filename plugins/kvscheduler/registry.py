"""The descriptor registry: which descriptor owns a key, and the metadata maps descriptors publish."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from plugins.kvscheduler.api import Descriptor, SchedulerError


class DescriptorRegistry:
    """Registered descriptors, indexed by name and by key prefix.

    Looking up a key's descriptor costs one dict probe per ``/`` in the key (the longest
    registered prefix wins), so it stays cheap with many descriptors and many keys.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, Descriptor[Any]] = {}
        self._by_prefix: dict[str, Descriptor[Any]] = {}
        self._metadata: dict[str, dict[str, Any]] = {}

    def register(self, descriptor: Descriptor[Any]) -> None:
        """Add ``descriptor``; its name and key prefix must be new and well formed."""
        name = getattr(descriptor, "name", "")
        if not name:
            raise SchedulerError(f"descriptor {type(descriptor).__qualname__} has no name")
        prefix = descriptor.key_prefix
        if not prefix.endswith("/"):
            raise SchedulerError(f"descriptor {name!r}: key prefix {prefix!r} must end with '/'")
        if name in self._by_name:
            raise SchedulerError(f"descriptor {name!r} is already registered")
        if prefix in self._by_prefix:
            other = self._by_prefix[prefix].name
            raise SchedulerError(f"descriptor {name!r}: key prefix {prefix!r} already belongs to {other!r}")
        for dep in descriptor.retrieve_after:
            if dep == name:
                raise SchedulerError(f"descriptor {name!r} lists itself in retrieve_after")
        self._by_name[name] = descriptor
        self._by_prefix[prefix] = descriptor
        self._metadata[name] = {}

    def by_name(self, name: str) -> Descriptor[Any]:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchedulerError(f"no descriptor named {name!r}") from None

    def has(self, name: str) -> bool:
        return name in self._by_name

    def for_key(self, key: str) -> Descriptor[Any] | None:
        """The descriptor owning ``key`` (longest matching prefix), or None."""
        by_prefix = self._by_prefix
        end = key.rfind("/")
        while end >= 0:
            found = by_prefix.get(key[: end + 1])
            if found is not None:
                return found
            end = key.rfind("/", 0, end)
        return None

    def __iter__(self) -> Iterator[Descriptor[Any]]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def retrieve_order(self) -> list[Descriptor[Any]]:
        """Descriptors ordered so that each comes after those in its ``retrieve_after``."""
        ordered: list[Descriptor[Any]] = []
        state: dict[str, int] = {}  # 1 = visiting, 2 = done

        def visit(desc: Descriptor[Any], path: tuple[str, ...]) -> None:
            mark = state.get(desc.name)
            if mark == 2:
                return
            if mark == 1:
                cycle = " -> ".join((*path, desc.name))
                raise SchedulerError(f"retrieve_after cycle: {cycle}")
            state[desc.name] = 1
            for dep_name in desc.retrieve_after:
                dep = self._by_name.get(dep_name)
                if dep is not None:  # an absent dataplane's descriptor imposes no order
                    visit(dep, (*path, desc.name))
            state[desc.name] = 2
            ordered.append(desc)

        for desc in sorted(self._by_name.values(), key=lambda d: d.name):
            visit(desc, ())
        return ordered

    # ---- metadata maps --------------------------------------------------------------------

    def value_name(self, descriptor: Descriptor[Any], key: str) -> str:
        prefix = descriptor.key_prefix
        return key[len(prefix) :] if key.startswith(prefix) else key

    def set_metadata(self, descriptor: Descriptor[Any], key: str, metadata: Any) -> None:
        if descriptor.with_metadata:
            self._metadata[descriptor.name][self.value_name(descriptor, key)] = metadata

    def drop_metadata(self, descriptor: Descriptor[Any], key: str) -> None:
        if descriptor.with_metadata:
            self._metadata[descriptor.name].pop(self.value_name(descriptor, key), None)

    def metadata(self, name: str) -> Mapping[str, Any]:
        """Read-only live view of ``name``'s metadata map (value name -> metadata)."""
        try:
            return MappingProxyType(self._metadata[name])
        except KeyError:
            raise SchedulerError(f"no descriptor named {name!r}") from None
