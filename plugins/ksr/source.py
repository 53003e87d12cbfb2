"""Where reflectors get Kubernetes objects from: the common face of the API and directory sources.

A source delivers, per resource keyword, a :class:`Relisted` item with the complete current
set of raw objects (first, and again whenever it had to re-list) followed by :class:`Changed`
items. Raw objects are Kubernetes JSON dicts; converting them is the reflector's job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RawObject = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Relisted:
    """The full current content of one resource (replaces everything seen before)."""

    objects: Sequence[RawObject]
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class Changed:
    """One object was added, modified or deleted (``type`` as in a watch event)."""

    type: str
    object: RawObject
    #: ``time.monotonic()`` when the source received the event (for latency statistics).
    received: float = field(default=0.0, compare=False)


SourceItem = Relisted | Changed
#: Called by a source with (keyword, item); must be safe to call from any thread.
Sink = Callable[[str, SourceItem], None]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


class Source(ABC):
    """A producer of Kubernetes objects for a set of resource keywords."""

    @abstractmethod
    async def start(self, keywords: Sequence[str], sink: Sink) -> None:
        """Begin listing and following ``keywords``, delivering items to ``sink``."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop producing; no item is delivered after this returns."""

    def problem(self, keyword: str) -> str:
        """Why ``keyword`` cannot be listed right now (e.g. the API server does not answer), or
        "" when nothing is known to be wrong."""
        return ""
