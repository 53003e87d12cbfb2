"""Memory under churn (short): RSS is flat after warm-up across pod ADD/DEL cycles.

The agent keeps histories of 100 here so a short run reaches their plateau; ``make soak``
runs 2,000 cycles with the default sizes. Before issue 14 the agent grew ~13 KiB per cycle
(a history without a count bound), then ~6 KiB per cycle of C-heap fragmentation (orphaned
netlink ACKs kept by pyroute2, each pinning a hole left by asyncio's 256 KiB datagram
buffer; docs/reliability.md). Flat here: the slope over the cycles after the warm-up stays
under 2 KiB per cycle (runs measure 0.2-0.9), well below either old growth, with room for the
noise of a loaded machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.reliability import report
from tests.reliability.churn import ChurnTestbed, churn

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(1800)]

# 1,000 cycles: on this machine the RSS still creeps up through the first few hundred cycles
# (a slow plateau: 400-cycle runs measured 2.1-6.8 KiB per cycle after cycle 200, on today's
# code and on the code of the last stop alike; 1,000 cycles measure ~1 after cycle 500, and
# 1,200 cycles 0.96 after cycle 600).
CYCLES = int(os.environ.get("RELIABILITY_MEMORY_CYCLES", "1000"))
WARMUP = CYCLES // 2
FLAT_KIB_PER_1000 = 2000.0


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChurnTestbed]:
    testbed = ChurnTestbed(tmp_path_factory.mktemp("churn"), prefix="wrm")
    testbed.start()
    try:
        yield testbed
    finally:
        testbed.close()


def test_rss_is_flat_after_warm_up(bed: ChurnTestbed) -> None:
    result = churn(bed, CYCLES, WARMUP)
    report.add(cycles=CYCLES, pods=CYCLES)
    print(result.table())
    assert bed.records() == {}
    assert result.slope_kib_per_1000 < FLAT_KIB_PER_1000, result.table()
