"""NAT44 endpoint-dependent (``nat44_ed``) value models and their keys.

Ownership: static, load-balanced and identity mappings carry the VPP tag ``cv:<label>``;
address pools, interface features and the plugin itself have no tag: they are ours when the
scheduler believes it applied them (read back only then), interface features also on our
interfaces. Every value waits for :class:`Nat44Global` (the plugin enabled).

Facts of the real VPP (v26.10) these models follow: a load-balanced mapping needs at least two
locals and, unless its external address is in the NAT pool, ``out2in-only`` (else -6); its
``affinity`` is not reported by the dump; removing a local that would leave one fails (-1);
an existing mapping, pool address or output interface answers -81, a missing one -6; enabling
an enabled plugin answers -170, disabling a disabled one -169.
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Address

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plugins.kvscheduler.api import ModelSpec
from plugins.linux.protocols import IP_PROTOCOLS

NAT_GLOBAL_SPEC = ModelSpec("vpp/nat", "v2", "nat44-global")
NAT_ADDRESS_SPEC = ModelSpec("vpp/nat", "v2", "address")
NAT_INTERFACE_SPEC = ModelSpec("vpp/nat", "v2", "interface")
NAT_MAPPING_SPEC = ModelSpec("vpp/nat", "v2", "mapping")
NAT_IDENTITY_SPEC = ModelSpec("vpp/nat", "v2", "identity")

#: VPP's "any VRF" for pool addresses.
ANY_VRF = 0xFFFFFFFF
#: IP protocol numbers of the protocols NAT44 translates ("" = address only; VPP does not NAT SCTP).
PROTOCOLS = {"": 0, **{name: IP_PROTOCOLS[name] for name in ("icmp", "tcp", "udp")}}
GLOBAL_KEY = NAT_GLOBAL_SPEC.key_prefix + "global"

# nat_config_flags
TWICE_NAT_FLAG = 0x01
SELF_TWICE_NAT_FLAG = 0x02
OUT2IN_ONLY_FLAG = 0x04
ADDR_ONLY_FLAG = 0x08
OUTSIDE_FLAG = 0x10
INSIDE_FLAG = 0x20


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Nat44Global(_Value):
    """The NAT44-ED plugin enabled, with its sizes and VRFs, and forwarding of untranslated traffic."""

    sessions: int = Field(0, ge=0)
    """Sessions per thread (0 = VPP's default, 64512 in v26.10)."""
    inside_vrf: int = Field(0, ge=0)
    outside_vrf: int = Field(0, ge=0)
    forwarding: bool = True
    """Pass traffic that matches no mapping instead of dropping it (Contiv: on)."""


class Nat44Address(_Value):
    """A pool range ``first``..``last``; ``twice_nat`` marks the twice-NAT pool."""

    first: IPv4Address
    last: IPv4Address | None = None
    vrf: int = ANY_VRF
    twice_nat: bool = False

    @model_validator(mode="after")
    def _range(self) -> Nat44Address:
        if self.last is not None and self.last < self.first:
            raise ValueError(f"NAT pool range {self.first}-{self.last} ends before it starts")
        return self

    @property
    def addresses(self) -> list[IPv4Address]:
        last = self.last or self.first
        return [IPv4Address(i) for i in range(int(self.first), int(last) + 1)]


class Nat44Interface(_Value):
    """NAT on an interface: inside and/or outside feature, or the output (post-routing) feature."""

    interface: str
    inside: bool = False
    outside: bool = False
    output: bool = False

    @model_validator(mode="after")
    def _some(self) -> Nat44Interface:
        if not (self.inside or self.outside or self.output):
            raise ValueError(f"NAT interface {self.interface!r}: none of inside, outside, output")
        if self.output and (self.inside or self.outside):
            raise ValueError(f"NAT interface {self.interface!r}: output feature excludes inside/outside")
        return self


class TwiceNat(enum.StrEnum):
    NONE = "none"
    SELF = "self"  # SNAT only when the client is its own backend (hairpin)
    ENABLED = "enabled"  # always SNAT to the twice-NAT pool


class NatLocal(_Value):
    """One backend of a mapping; ``probability`` weights it in a load-balanced mapping."""

    ip: IPv4Address
    port: int = Field(0, ge=0, le=65535)
    probability: int = Field(0, ge=0, le=255)
    vrf: int = Field(0, ge=0)


class Nat44Mapping(_Value):
    """A DNAT static mapping (one local) or a load-balanced one (several), keyed by its frontend."""

    external_ip: IPv4Address
    protocol: str = "tcp"
    external_port: int = Field(0, ge=0, le=65535)
    locals: tuple[NatLocal, ...]
    twice_nat: TwiceNat = TwiceNat.NONE
    affinity: int = Field(0, ge=0)
    """Session affinity timeout in seconds (0 = none); needs a load-balanced mapping."""
    out2in_only: bool = True
    """Translate only connections towards the frontend (never SNAT a backend's own traffic)."""
    label: str = Field("", max_length=60)
    """Who asked for it (e.g. the service ``namespace/name``): the tag is ``cv:<label>``."""

    @field_validator("protocol")
    @classmethod
    def _proto(cls, value: str) -> str:
        if value not in PROTOCOLS:
            raise ValueError(f"NAT protocol {value!r} (expected one of tcp, udp, icmp, '')")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Nat44Mapping:
        if not self.locals:
            raise ValueError(f"NAT mapping {self.external_ip}:{self.external_port}: no locals")
        if len(self.locals) == 1 and self.affinity:
            raise ValueError(f"NAT mapping {self.external_ip}:{self.external_port}: affinity needs 2+ locals")
        if (self.protocol == "") != (self.external_port == 0):
            raise ValueError("NAT mapping: address-only mappings have neither protocol nor port")
        return self

    @property
    def load_balanced(self) -> bool:
        return len(self.locals) > 1

    @property
    def tag(self) -> str:
        return "cv:" + self.label


class Nat44Identity(_Value):
    """An identity mapping: traffic to ``ip`` (``protocol``/``port``, or address only) is never translated."""

    ip: IPv4Address
    protocol: str = ""
    port: int = Field(0, ge=0, le=65535)
    vrf: int = Field(0, ge=0)
    label: str = Field("", max_length=60)

    @field_validator("protocol")
    @classmethod
    def _proto(cls, value: str) -> str:
        if value not in PROTOCOLS:
            raise ValueError(f"NAT protocol {value!r} (expected one of tcp, udp, icmp, '')")
        return value

    @property
    def tag(self) -> str:
        return "cv:" + self.label


def nat_address_key(value: Nat44Address) -> str:
    last = f"-{value.last}" if value.last is not None and value.last != value.first else ""
    vrf = "any" if value.vrf == ANY_VRF else str(value.vrf)
    return f"{NAT_ADDRESS_SPEC.key_prefix}{vrf}/{value.first}{last}{'/twice' if value.twice_nat else ''}"


def nat_interface_key(interface: str) -> str:
    return NAT_INTERFACE_SPEC.key_prefix + interface


def nat_mapping_key(external_ip: IPv4Address | str, protocol: str, port: int) -> str:
    return f"{NAT_MAPPING_SPEC.key_prefix}{external_ip}/{protocol or 'any'}/{port}"


def nat_identity_key(value: Nat44Identity) -> str:
    return f"{NAT_IDENTITY_SPEC.key_prefix}{value.vrf}/{value.ip}/{value.protocol or 'any'}/{value.port}"
