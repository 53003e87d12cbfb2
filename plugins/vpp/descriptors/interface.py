"""The ``vpp-interface`` descriptor: loopback, TAP, af_packet, VXLAN and adopted interfaces.

Ownership: the VPP tag ``cv:<name>`` (``sw_interface_tag_add_del`` right after creation; a
half-made interface is removed again before the error is reported; where that removal could
not happen, e.g. the connection was lost, an untagged af_packet on the host interface asked
for is taken over on retry). VRF binding, addresses and
unnumbered are values of their own (``interface_derived.py``); a TAP may publish its Linux side
as a scheduler property and mark it for the Linux descriptors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from plugins.kvscheduler.api import (
    Dependency,
    DerivedValue,
    InvalidValueError,
    RetrievedValue,
    ValueWithMetadata,
)
from plugins.vpp.afpacket import SHOW_HARDWARE, create_flags, link_flags, parse_features
from plugins.vpp.descriptors.base import VPPDescriptor
from plugins.vpp.errors import VPPCallError, VPPNotFoundError
from plugins.vpp.hostlink import mark_host_link
from plugins.vpp.model import (
    INTERFACE_SPEC,
    NO_INDEX,
    TAG_PREFIX,
    AfPacketLink,
    HostLinkProperty,
    Interface,
    InterfaceType,
    TapLink,
    VxlanLink,
    interface_key,
    vrf_key,
)

log = logging.getLogger("contiv.vpp.interface")

ADMIN_UP = 1
#: tap_create_v3's answer where the kernel has no vhost-net (SYSCALL_ERROR_1).
NO_VHOST_NET = -11
#: af_packet_create_v3's answer when the host interface already has an af_packet (IF_ALREADY_EXISTS).
IF_ALREADY_EXISTS = -79
ZERO_MAC = "00:00:00:00:00:00"


class InterfaceDescriptor(VPPDescriptor[Interface]):
    """VPP interfaces; metadata is the ``sw_if_index``."""

    name = "vpp-interface"
    spec = INTERFACE_SPEC
    model = Interface
    with_metadata = True

    def value_name(self, value: Interface) -> str:
        return value.name

    def validate(self, key: str, value: Interface) -> None:
        if len(value.tag) > 63:
            raise InvalidValueError(key, f"name {value.name!r} too long for a VPP tag")

    def dependencies(self, key: str, value: Interface) -> Sequence[Dependency]:
        deps = []
        if value.afpacket is not None and value.afpacket.host_link_key:
            deps.append(Dependency(label="host interface", key=value.afpacket.host_link_key))
        if value.vxlan is not None and value.vxlan.encap_vrf:
            deps.append(Dependency(label="encap VRF", key=vrf_key(value.vxlan.encap_vrf)))
        return deps

    def derived_values(self, key: str, value: Interface) -> Sequence[DerivedValue]:
        if value.tap is not None and value.tap.host_link_property:
            prop = HostLinkProperty(namespace=value.tap.host_namespace, ifname=value.tap.host_if_name)
            return [DerivedValue(value.tap.host_link_property, prop)]
        return []

    def equivalent(self, key: str, old: Interface, new: Interface) -> bool:
        """Equal up to what VPP cannot report: an open MAC, the default MTU, property keys."""
        return _normalised(old, new) == _normalised(new, old)

    def update_needs_recreate(self, key: str, old: Interface, new: Interface) -> bool:
        changed = {f for f in Interface.model_fields if getattr(old, f) != getattr(new, f)}
        return bool(changed - {"enabled"})

    # ------------------------------------------------------------------------------ CRUD

    async def create(self, key: str, value: Interface) -> int:
        index = await self._create_link(value)
        self.indexes.interfaces.put(value.name, index)
        try:
            # tap_create_v3 carries the tag too; setting it explicitly does not depend on that.
            await self.api.call("sw_interface_tag_add_del", is_add=True, sw_if_index=index, tag=value.tag)
            if value.tap is not None and value.tap.host_alias:
                await mark_host_link(value.tap.host_namespace, value.tap.host_if_name, value.tap.host_alias)
            if value.mac and value.type == InterfaceType.EXISTING:
                await self.api.call("sw_interface_set_mac_address", sw_if_index=index, mac_address=value.mac)
            flags = ADMIN_UP if value.enabled else 0
            await self.api.call("sw_interface_set_flags", sw_if_index=index, flags=flags)
        except Exception:
            # Undo the half-made interface: untagged, a retry would make a second one.
            try:
                await self.delete(key, value, index)
            except Exception as err:  # noqa: BLE001 - the original error is the one to report
                self.log_undo_failure(value.name, err)
            raise
        return index

    def log_undo_failure(self, name: str, err: Exception) -> None:
        log.warning("could not remove half-created VPP interface %s: %s", name, err)

    async def _create_link(self, value: Interface) -> int:
        mac = value.mac or ZERO_MAC
        if value.type == InterfaceType.LOOPBACK:
            reply = await self.api.call(
                "create_loopback_instance", mac_address=mac, is_specified=False, user_instance=NO_INDEX
            )
        elif value.type == InterfaceType.TAP:
            reply = await self._create_tap(value, value.tap)
        elif value.type == InterfaceType.AF_PACKET:
            assert value.afpacket is not None
            try:
                reply = await self._call_af_packet_create(value, value.afpacket)
            except VPPCallError as err:
                if err.retval != IF_ALREADY_EXISTS:
                    raise
                return await self._adopt_af_packet(value, value.afpacket.host_if_name, err)
        elif value.type == InterfaceType.VXLAN:
            assert value.vxlan is not None
            reply = await self.api.call("vxlan_add_del_tunnel_v3", is_add=True, **_vxlan_args(value.vxlan))
        else:
            return await self._find_existing(value.vpp_name)
        return int(reply.sw_if_index)

    async def _adopt_af_packet(self, value: Interface, host_if_name: str, err: VPPCallError) -> int:
        """``af_packet_create_v3`` said -79: an af_packet on this host interface exists already.

        Untagged, it is one we asked for whose tag never landed (a create cut short by a lost
        connection, issue 17) or the NIC attached by hand before the agent started: the host
        interface name is the one we asked for, so it is taken over (tagged by the caller).
        Tagged by anyone else, it is not ours and stays untouched. Made with other flags than
        ``value`` asks for, it is re-created with them (flags belong to the socket).
        """
        index = next(
            (int(a.sw_if_index) for a in await self.api.dump("af_packet_dump") if a.host_if_name == host_if_name),
            None,
        )
        if index is None:
            raise err
        (details,) = await self.api.dump(
            "sw_interface_dump", sw_if_index=index, name_filter_valid=False, name_filter=""
        )
        if details.tag and details.tag != value.tag:
            hint = f"host-{host_if_name} exists with tag {details.tag!r}: not ours, not taken over"
            raise VPPCallError(err.message, err.retval, hint=hint, fatal=True) from err
        assert value.afpacket is not None
        reply = await self.api.call("cli_inband", cmd=SHOW_HARDWARE)
        found = link_flags(parse_features(str(reply.reply)).get(str(details.interface_name), frozenset()))
        if found != {"offload": value.afpacket.offload, "qdisc_bypass": value.afpacket.qdisc_bypass}:
            # made with other flags (the CLI's defaults are both): only a new socket takes ours
            log.info("re-creating the untagged af_packet host-%s with the flags of %s", host_if_name, value.name)
            await self.api.call("af_packet_delete", host_if_name=host_if_name)
            return int((await self._call_af_packet_create(value, value.afpacket)).sw_if_index)
        log.info("taking over the untagged af_packet interface host-%s as %s", host_if_name, value.name)
        return index

    async def _call_af_packet_create(self, value: Interface, link: AfPacketLink) -> Any:
        return await self.api.call(
            "af_packet_create_v3",
            mode=1,
            hw_addr=value.mac or ZERO_MAC,
            use_random_hw_addr=not value.mac,
            host_if_name=link.host_if_name,
            flags=create_flags(link),
            num_rx_queues=1,
            num_tx_queues=1,
        )

    async def _create_tap(self, value: Interface, tap: TapLink | None) -> Any:
        assert tap is not None
        try:
            return await self._call_tap_create(value, tap)
        except VPPCallError as err:
            if err.retval != NO_VHOST_NET:
                raise
            hint = "the host has no /dev/vhost-net; use the veth pod interface mode (af_packet)"
            raise VPPCallError(err.message, err.retval, hint=hint, fatal=True) from err

    async def _call_tap_create(self, value: Interface, tap: TapLink) -> Any:
        return await self.api.call(
            "tap_create_v3",
            id=NO_INDEX,
            use_random_mac=not value.mac,
            mac_address=value.mac or ZERO_MAC,
            num_rx_queues=1,
            num_tx_queues=1,
            rx_ring_sz=tap.rx_ring_size,
            tx_ring_sz=tap.tx_ring_size,
            host_mtu_set=bool(tap.host_mtu),
            host_mtu_size=tap.host_mtu,
            host_if_name_set=True,
            host_if_name=tap.host_if_name,
            host_namespace_set=bool(tap.host_namespace),
            host_namespace=tap.host_namespace,
            host_mac_addr_set=bool(tap.host_mac),
            host_mac_addr=tap.host_mac or ZERO_MAC,
            tag=value.tag,
        )

    async def _find_existing(self, vpp_name: str) -> int:
        for details in await self.api.dump(
            "sw_interface_dump", sw_if_index=NO_INDEX, name_filter_valid=False, name_filter=""
        ):
            if details.interface_name == vpp_name:
                return int(details.sw_if_index)
        raise VPPNotFoundError(f"VPP has no interface named {vpp_name!r}")

    async def update(self, key: str, old: Interface, new: Interface, metadata: Any) -> int:
        index = int(metadata)
        if old.enabled != new.enabled:
            await self.api.call("sw_interface_set_flags", sw_if_index=index, flags=ADMIN_UP if new.enabled else 0)
        return index

    async def delete(self, key: str, value: Interface, metadata: Any) -> None:
        index = self.indexes.interfaces.index(value.name)
        index = int(metadata) if metadata is not None else index
        if index is None:
            return
        if value.type == InterfaceType.LOOPBACK:
            await self.api.call("delete_loopback", sw_if_index=index)
        elif value.type == InterfaceType.TAP:
            await self.api.call("tap_delete_v2", sw_if_index=index)
        elif value.type == InterfaceType.AF_PACKET:
            assert value.afpacket is not None
            await self.api.call("af_packet_delete", host_if_name=value.afpacket.host_if_name)
        elif value.type == InterfaceType.VXLAN:
            assert value.vxlan is not None
            await self.api.call("vxlan_add_del_tunnel_v3", is_add=False, **_vxlan_args(value.vxlan))
        else:
            await self.api.call("sw_interface_set_flags", sw_if_index=index, flags=0)
            await self.api.call("sw_interface_tag_add_del", is_add=False, sw_if_index=index, tag="")
        self.indexes.interfaces.remove(value.name)

    # ------------------------------------------------------------------------------ read-back

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        expected = {c.key: c.value for c in correlate if isinstance(c.value, Interface)}
        details = await self.api.dump(
            "sw_interface_dump", sw_if_index=NO_INDEX, name_filter_valid=False, name_filter=""
        )
        ours = [d for d in details if d.tag.startswith(TAG_PREFIX)]
        self.indexes.interfaces.clear()
        for d in ours:
            self.indexes.interfaces.put(d.tag[len(TAG_PREFIX) :], int(d.sw_if_index))
        if not ours:
            return []
        taps = {int(t.sw_if_index): t for t in await self.api.dump("sw_interface_tap_v2_dump", sw_if_index=NO_INDEX)}
        afps = {int(a.sw_if_index): a for a in await self.api.dump("af_packet_dump")}
        vxlans = {int(v.sw_if_index): v for v in await self.api.dump("vxlan_tunnel_v2_dump", sw_if_index=NO_INDEX)}
        features: dict[str, frozenset[str]] = {}
        if any(int(d.sw_if_index) in afps for d in ours):  # the flags: VPP's dump has none
            features = parse_features(str((await self.api.call("cli_inband", cmd=SHOW_HARDWARE)).reply))
        out = []
        for d in ours:
            name = d.tag[len(TAG_PREFIX) :]
            index = int(d.sw_if_index)
            old = expected.get(interface_key(name))
            fields: dict[str, Any] = {"name": name, "enabled": bool(int(d.flags) & ADMIN_UP), "mac": str(d.l2_address)}
            fields.update(_link_fields(d, taps.get(index), afps.get(index), vxlans.get(index), old))
            if fields["type"] == InterfaceType.AF_PACKET:
                flags = link_flags(features.get(str(d.interface_name), frozenset()))
                fields["afpacket"] = fields["afpacket"].model_copy(update=flags)
            if old is not None and not old.mac:
                fields["mac"] = ""  # VPP picked it; the desired value leaves it open
            out.append(RetrievedValue(key=interface_key(name), value=Interface(**fields), metadata=index))
        return out


def _normalised(value: Interface, other: Interface) -> Interface:
    changes: dict[str, Any] = {}
    if not value.mac or not other.mac:
        changes["mac"] = ""
    if value.tap is not None and other.tap is not None:
        tap_changes: dict[str, Any] = {}
        for lost in ("host_link_property", "host_alias", "host_mac"):
            if not getattr(value.tap, lost) or not getattr(other.tap, lost):
                tap_changes[lost] = ""
        if {value.tap.host_mtu, other.tap.host_mtu} <= {0, 1500}:
            tap_changes["host_mtu"] = 0
        changes["tap"] = value.tap.model_copy(update=tap_changes)
    if value.afpacket is not None and other.afpacket is not None:
        if not value.afpacket.host_link_key or not other.afpacket.host_link_key:
            changes["afpacket"] = value.afpacket.model_copy(update={"host_link_key": ""})
    return value.model_copy(update=changes)


def _vxlan_args(link: VxlanLink) -> dict[str, Any]:
    return {
        "instance": NO_INDEX,
        "src_address": str(link.src),
        "dst_address": str(link.dst),
        "src_port": 4789,
        "dst_port": 4789,
        "mcast_sw_if_index": NO_INDEX,
        "encap_vrf_id": link.encap_vrf,
        "decap_next_index": 1,  # l2-input: the tunnel is a bridge-domain member
        "vni": link.vni,
        "is_l3": False,
    }


def _link_fields(d: Any, tap: Any, afp: Any, vxlan: Any, old: Interface | None) -> dict[str, Any]:
    """Type-specific fields; what VPP cannot report (property keys) comes from ``old``."""
    if tap is not None:
        old_tap = old.tap if old is not None and old.tap is not None else None
        mtu = int(tap.host_mtu_size)
        if old_tap is not None and old_tap.host_mtu == 0 and mtu == 1500:
            mtu = 0
        link = TapLink(
            host_if_name=tap.host_if_name,
            host_namespace=tap.host_namespace,
            host_mtu=mtu,
            rx_ring_size=int(tap.rx_ring_sz),
            tx_ring_size=int(tap.tx_ring_sz),
            host_mac=str(tap.host_mac_addr) if old_tap is None or old_tap.host_mac else "",
            host_link_property=old_tap.host_link_property if old_tap is not None else "",
            host_alias=old_tap.host_alias if old_tap is not None else "",
        )
        return {"type": InterfaceType.TAP, "tap": link}
    if afp is not None:
        key = old.afpacket.host_link_key if old is not None and old.afpacket is not None else ""
        return {
            "type": InterfaceType.AF_PACKET,
            "afpacket": AfPacketLink(host_if_name=afp.host_if_name, host_link_key=key),
        }
    if vxlan is not None:
        tunnel = VxlanLink(
            src=str(vxlan.src_address),
            dst=str(vxlan.dst_address),
            vni=int(vxlan.vni),
            encap_vrf=int(vxlan.encap_vrf_id),
        )
        return {"type": InterfaceType.VXLAN, "vxlan": tunnel}
    if d.interface_dev_type == "Loopback" or str(d.interface_name).startswith("loop"):
        return {"type": InterfaceType.LOOPBACK}
    return {"type": InterfaceType.EXISTING, "vpp_name": d.interface_name}
