"""Every Linux descriptor is typed by its value model (``LinuxDescriptor[Route]``), so strict
mypy checks its methods; ``LinuxDescriptor(Descriptor[Any])`` erased that (defect 10)."""

from __future__ import annotations

import typing

from plugins.linux.descriptors import address, base, neighbour, offload, route, sysctl, veth, vxlan

DESCRIPTORS = [
    address.AddressDescriptor, neighbour.NeighbourDescriptor, neighbour.FdbDescriptor,
    offload.OffloadDescriptor, route.RouteDescriptor, sysctl.SysctlDescriptor,
    veth.VethDescriptor, vxlan.VxlanDescriptor,
]


def _value_type(cls: type) -> object:
    for parent in getattr(cls, "__orig_bases__", ()):
        origin = typing.get_origin(parent)
        if isinstance(origin, type) and issubclass(origin, base.LinuxDescriptor):
            (arg,) = typing.get_args(parent)
            return arg
    raise AssertionError(f"{cls.__name__} does not parametrise LinuxDescriptor")


def test_each_linux_descriptor_is_typed_by_its_model() -> None:
    for cls in DESCRIPTORS:
        assert _value_type(cls) is cls.model, cls.__name__
    assert typing.get_args(base.LinuxDescriptor.__orig_bases__[0]) != (typing.Any,)  # type: ignore[attr-defined]
