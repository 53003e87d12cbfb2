"""KV-scheduler descriptors of VPP objects (one module per area)."""

from __future__ import annotations

from typing import Any

from plugins.kvscheduler.api import Descriptor
from plugins.vpp.descriptors.acl import AclDescriptor, AclInterfaceDescriptor
from plugins.vpp.descriptors.base import VPPApi
from plugins.vpp.descriptors.cnat import CnatTranslationDescriptor
from plugins.vpp.descriptors.interface import InterfaceDescriptor
from plugins.vpp.descriptors.interface_derived import (
    InterfaceAddressDescriptor,
    InterfaceVrfDescriptor,
    UnnumberedDescriptor,
)
from plugins.vpp.descriptors.l2 import BridgeDomainDescriptor, BridgeDomainInterfaceDescriptor, L2FibDescriptor
from plugins.vpp.descriptors.l3 import NeighbourDescriptor, RouteDescriptor, VrfTableDescriptor
from plugins.vpp.descriptors.nat import (
    Nat44AddressDescriptor,
    Nat44GlobalDescriptor,
    Nat44IdentityDescriptor,
    Nat44InterfaceDescriptor,
    Nat44MappingDescriptor,
)
from plugins.vpp.descriptors.stn import ProxyArpInterfaceDescriptor, ProxyArpRangeDescriptor, StnRuleDescriptor
from plugins.vpp.index import Indexes


def all_descriptors(api: VPPApi, indexes: Indexes) -> list[Descriptor[Any]]:
    """Every VPP descriptor, sharing one connection and one set of indexes."""
    return [
        InterfaceDescriptor(api, indexes),
        InterfaceVrfDescriptor(api, indexes),
        InterfaceAddressDescriptor(api, indexes),
        UnnumberedDescriptor(api, indexes),
        VrfTableDescriptor(api, indexes),
        RouteDescriptor(api, indexes),
        NeighbourDescriptor(api, indexes),
        BridgeDomainDescriptor(api, indexes),
        BridgeDomainInterfaceDescriptor(api, indexes),
        L2FibDescriptor(api, indexes),
        AclDescriptor(api, indexes),
        AclInterfaceDescriptor(api, indexes),
        StnRuleDescriptor(api, indexes),
        ProxyArpRangeDescriptor(api, indexes),
        ProxyArpInterfaceDescriptor(api, indexes),
        Nat44GlobalDescriptor(api, indexes),
        Nat44AddressDescriptor(api, indexes),
        Nat44InterfaceDescriptor(api, indexes),
        Nat44MappingDescriptor(api, indexes),
        Nat44IdentityDescriptor(api, indexes),
        CnatTranslationDescriptor(api, indexes),
    ]
