"""cnat (VPP's ``cnat`` plugin, the NAT Calico/VPP uses for Services) value models and keys.

A :class:`CnatTranslation` is one frontend (VIP, protocol, port) and its backends, IPv4 or
IPv6. VPP balances a translation over its paths and tracks sessions (the return path is
translated back); ``affinity`` hashes on the client address only (Maglev), so a client keeps
its backend while the backend set stays the same (cnat has no affinity timeout).

Ownership: cnat translations carry no tag; they are ours when the scheduler believes it applied
them (read back only then). Facts of the real VPP (v26.10) the descriptor follows: an update of
an existing (VIP, protocol, port) replaces its paths in place and answers the same ``id``;
deleting an unknown ``id`` answers -6; the dump reports every path with flag 0x4 (resolved) and
no ``flow_hash_config`` (always 0; ``show cnat translation`` shows the applied one), so affinity
is read back from the load-balancing type (Maglev is used for affinity only).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from plugins.kvscheduler.api import ModelSpec

CNAT_TRANSLATION_SPEC = ModelSpec("vpp/cnat", "v1", "translation")
#: IP protocol numbers cnat translates.
PROTOCOLS = {"tcp": 6, "udp": 17}
#: ``ip_flow_hash_config_v2``: the client's address only (affinity).
FLOW_HASH_SRC_IP = 0x01
LB_DEFAULT = 0
LB_MAGLEV = 1

IPAddress = IPv4Address | IPv6Address


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CnatBackend(_Value):
    ip: IPAddress
    port: int = Field(ge=1, le=65535)


class CnatTranslation(_Value):
    """``config/vpp/cnat/v1/translation/<vip>/<protocol>/<port>``."""

    vip: IPAddress
    protocol: Literal["tcp", "udp"]
    port: int = Field(ge=1, le=65535)
    backends: tuple[CnatBackend, ...] = Field(min_length=1)
    affinity: bool = False
    """ClientIP affinity: Maglev over the client's address only."""
    label: str = ""
    """What it is for (the service); not stored in VPP."""

    @model_validator(mode="after")
    def _family(self) -> CnatTranslation:
        mixed = [str(b.ip) for b in self.backends if b.ip.version != self.vip.version]
        if mixed:
            raise ValueError(f"cnat translation {self.vip}: backends of another IP family: {', '.join(mixed)}")
        return self


def cnat_translation_key(vip: IPAddress | str, protocol: str, port: int) -> str:
    return f"{CNAT_TRANSLATION_SPEC.key_prefix}{ip_address(str(vip))}/{protocol}/{port}"
