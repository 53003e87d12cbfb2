"""af_packet specifics: the ``af_packet_create_v3`` flags of an :class:`AfPacketLink` and reading
them back (VPP's ``af_packet_dump`` does not report them; ``show hardware-interfaces`` does)."""

from __future__ import annotations

from plugins.vpp.model import AfPacketLink

#: ``vl_api_af_packet_flags_t`` (af_packet.api.json, VPP 26.10).
FLAG_QDISC_BYPASS = 1
FLAG_CKSUM_GSO = 2
#: Set: TPACKET_V2; clear: TPACKET_V3 (block rings, VPP's default since 23.06).
FLAG_VERSION_2 = 8

#: What ``show hardware-interfaces`` lists under ``FEATURES:`` for each flag in effect.
FEATURE_QDISC_BYPASS = "qdisc-bpass-enabled"
FEATURE_CKSUM_GSO = "cksum-gso-enabled"
#: The CLI command whose output :func:`parse_features` reads.
SHOW_HARDWARE = "show hardware-interfaces"


def create_flags(link: AfPacketLink) -> int:
    """The ``flags`` of ``af_packet_create_v3`` for ``link`` (always TPACKET_V3)."""
    return (FLAG_CKSUM_GSO if link.offload else 0) | (FLAG_QDISC_BYPASS if link.qdisc_bypass else 0)


def parse_features(text: str) -> dict[str, frozenset[str]]:
    """VPP interface name -> the words under its ``FEATURES:`` heading in ``show hardware-interfaces``.

    Each interface's block starts with an unindented line (``host-eth1  1  up  host-eth1``); its
    ``FEATURES:`` heading is followed by one more-indented word per line. Interfaces without
    features map to an empty set.
    """
    out: dict[str, set[str]] = {}
    current = ""
    heading_indent = -1
    for line in text.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            current = line.split()[0]
            if current != "Name":  # the table heading
                out[current] = set()
            heading_indent = -1
        elif line.strip() == "FEATURES:":
            heading_indent = indent
        elif heading_indent >= 0 and indent > heading_indent and current in out:
            out[current].add(line.strip())
        else:
            heading_indent = -1
    return {name: frozenset(words) for name, words in out.items()}


def link_flags(features: frozenset[str]) -> dict[str, bool]:
    """The :class:`AfPacketLink` fields the features of one interface say are in effect."""
    return {"offload": FEATURE_CKSUM_GSO in features, "qdisc_bypass": FEATURE_QDISC_BYPASS in features}
