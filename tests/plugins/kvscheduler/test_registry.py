"""Descriptor registry: unique names and prefixes, key lookup, retrieve order."""

from __future__ import annotations

import pytest

from plugins.kvscheduler.api import SchedulerError
from plugins.kvscheduler.registry import DescriptorRegistry
from plugins.kvscheduler.testing import ItemDescriptor, MemoryDevice, item_descriptor_class


def test_lookup_uses_the_longest_registered_prefix() -> None:
    registry = DescriptorRegistry()
    device = MemoryDevice()
    outer = item_descriptor_class("outer", "test", "box")(device)
    inner_cls = item_descriptor_class("inner", "test", "box/inner")
    inner = inner_cls(device)
    registry.register(outer)
    registry.register(inner)
    assert registry.for_key("config/test/v1/box/a") is outer
    assert registry.for_key("config/test/v1/box/inner/a") is inner
    assert registry.for_key("config/test/v1/other/a") is None
    assert registry.for_key("no-slashes") is None


def test_duplicate_name_and_prefix_are_rejected() -> None:
    registry = DescriptorRegistry()
    registry.register(ItemDescriptor(MemoryDevice()))
    with pytest.raises(SchedulerError, match="already registered"):
        registry.register(ItemDescriptor(MemoryDevice()))
    same_prefix = type("Same", (ItemDescriptor,), {"name": "other-name"})
    with pytest.raises(SchedulerError, match="already belongs to 'test-item'"):
        registry.register(same_prefix(MemoryDevice()))


def test_retrieve_order_follows_retrieve_after_and_detects_cycles() -> None:
    device = MemoryDevice()
    first = item_descriptor_class("b-first", "test", "first")
    second = type(
        "Second",
        (item_descriptor_class("a-second", "test", "second"),),
        {"retrieve_after": ("b-first", "not-registered")},
    )
    registry = DescriptorRegistry()
    registry.register(second(device))
    registry.register(first(device))
    assert [d.name for d in registry.retrieve_order()] == ["b-first", "a-second"]

    looped = type(
        "Loop",
        (first,),
        {"name": "loop-a", "spec": first.spec.__class__("t", "v1", "la"), "retrieve_after": ("loop-b",)},
    )
    looped_b = type(
        "LoopB",
        (first,),
        {"name": "loop-b", "spec": first.spec.__class__("t", "v1", "lb"), "retrieve_after": ("loop-a",)},
    )
    registry.register(looped(device))
    registry.register(looped_b(device))
    with pytest.raises(SchedulerError, match="retrieve_after cycle"):
        registry.retrieve_order()


def test_metadata_map_is_read_only_and_unknown_descriptor_is_named() -> None:
    registry = DescriptorRegistry()
    desc = ItemDescriptor(MemoryDevice())
    registry.register(desc)
    registry.set_metadata(desc, desc.key_prefix + "eth0", 7)
    view = registry.metadata("test-item")
    assert dict(view) == {"eth0": 7}
    with pytest.raises(TypeError):
        view["x"] = 1  # type: ignore[index]
    with pytest.raises(SchedulerError, match="no descriptor named 'nope'"):
        registry.metadata("nope")
