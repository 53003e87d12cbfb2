"""Stable short names derived from text: the one hash behind the names the agent gives what it
creates (pod interfaces, shared policy chains and ACLs, service chains, nftables ownership
comments). Stable across restarts and machines (never Python's ``hash``), so a restarted agent
derives the same names and its resync finds its own objects."""

from __future__ import annotations

import hashlib


def short_hash(text: str, digits: int = 12) -> str:
    """The first ``digits`` hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:digits]
