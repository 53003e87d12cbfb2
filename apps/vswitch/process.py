"""The agent's process-wide policy, in one place: the ``process`` plugin (YAML section ``process``).

Library code never decides what changes the whole process; it asks :mod:`core.tuning`. This
plugin, first in the agent's ``plugins:`` list, sets that policy at its ``init`` from its
config: the GC pause around event handling and transaction planning and the heap trim after
big nftables batches (see :mod:`core.tuning`, and docs/plugins.md for what runs with GC
paused), and glibc's mmap threshold.

The C heap's **mmap threshold** is pinned too, but by ``main`` before anything is imported or
allocated (``apps/vswitch/malloc.py``: a later pin would leave the heap's early free blocks to
the datagram buffers it is meant to keep off the heap); ``CONTIV_MMAP_THRESHOLD_BYTES=0`` leaves
glibc's dynamic threshold.
"""

from __future__ import annotations

from pydantic import Field

from core import tuning
from core.plugin import Plugin, PluginConfig


class ProcessConfig(PluginConfig):
    """The agent's process-wide tuning."""

    gc_pause: bool = True
    """Pause Python's automatic garbage collection while the controller handles one event and
    the scheduler plans its transaction (on again whenever the transaction waits for the
    dataplane): a large event allocates many small objects, which the collector would rescan
    over and over."""

    gc_promote_after: int = Field(default=tuning.PROMOTE_AFTER, ge=0)
    """Young objects above which the end of a pause moves them to the oldest generation instead
    of letting the collector scan them (what a big resync built lives on)."""

    heap_trim: bool = True
    """Give the C heap back to the system after an nftables batch of ``heap_trim_min_bytes`` or
    more (libnftables' parsing grows it by ~100 MB for a 10k-service table)."""

    heap_trim_min_bytes: int = Field(default=1 << 20, ge=0)
    """Batch size (bytes of nft text) from which the heap is trimmed."""


class ProcessPlugin(Plugin):
    """Name ``process``: sets the process-wide policy (:mod:`core.tuning`)."""

    name = "process"
    Config = ProcessConfig
    config: ProcessConfig

    def policy(self) -> tuning.ProcessTuning:
        """The :class:`core.tuning.ProcessTuning` of this config."""
        c = self.config
        return tuning.ProcessTuning(gc_pause=c.gc_pause, gc_promote_after=c.gc_promote_after,
                                    heap_trim=c.heap_trim, heap_trim_min_bytes=c.heap_trim_min_bytes)

    async def init(self) -> None:
        tuning.configure(self.policy())
        self.log.info("process policy: %s", self.policy())

    async def close(self) -> None:
        tuning.configure(tuning.ProcessTuning())
