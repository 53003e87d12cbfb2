"""Pod ADD/DEL churn on one real agent, sampling its RSS: the memory-under-churn measurement
shared by the CI test (short) and ``make soak`` (``bench/soak.py``, long)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.testbed import NodeTestbed


class ChurnTestbed(NodeTestbed):
    """A testbed whose agent keeps short histories, so that a short run reaches its plateau."""

    def __init__(self, workdir: Path, history: int = 100, **kw: Any) -> None:
        super().__init__(workdir, **kw)
        self.history = history

    def agent_config(self) -> dict[str, Any]:
        config = super().agent_config()
        config["controller"].update(event_history_max_records=self.history,
                                    event_history_permanent_max=20)
        config["kvscheduler"] = {"history_size": self.history}
        return config


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for pid {pid}")


def agent_pid(bed: NodeTestbed) -> int:
    """The agent process (``ip netns exec`` execs it: the Popen's PID)."""
    assert bed.agent is not None
    return bed.agent.pid


@dataclass
class ChurnResult:
    cycles: int
    warmup: int
    samples: list[tuple[int, int]] = field(default_factory=list)  # (cycle, RSS KiB)

    @property
    def slope_kib_per_1000(self) -> float:
        """Least-squares slope of RSS over cycles after the warm-up, in KiB per 1,000 cycles."""
        points = [(c, r) for c, r in self.samples if c >= self.warmup]
        n = len(points)
        if n < 2:
            return 0.0
        mx = sum(c for c, _ in points) / n
        my = sum(r for _, r in points) / n
        var = sum((c - mx) ** 2 for c, _ in points)
        cov = sum((c - mx) * (r - my) for c, r in points)
        return 1000.0 * cov / var if var else 0.0

    @property
    def after_warmup_mib(self) -> tuple[float, float, float]:
        """(min, mean, max) RSS in MiB of the samples after the warm-up: the plateau."""
        rss = [r / 1024 for c, r in self.samples if c >= self.warmup] or [0.0]
        return min(rss), sum(rss) / len(rss), max(rss)

    def table(self) -> str:
        lines = [f"{'cycle':>7} {'RSS MiB':>8}"]
        step = max(1, len(self.samples) // 12)
        for cycle, rss in self.samples[::step] + self.samples[-1:]:
            lines.append(f"{cycle:>7} {rss / 1024:>8.1f}")
        low, mean, high = self.after_warmup_mib
        lines.append(f"slope after {self.warmup} warm-up cycles: "
                     f"{self.slope_kib_per_1000:.0f} KiB per 1,000 cycles")
        lines.append(f"RSS after warm-up: {low:.1f} .. {high:.1f} MiB (mean {mean:.1f})")
        return "\n".join(lines)


def churn(bed: NodeTestbed, cycles: int, warmup: int, sample_every: int = 10) -> ChurnResult:
    """``cycles`` times: ADD a pod, DEL it (same namespace, new container ID each time)."""
    result = ChurnResult(cycles, warmup)
    pod = bed.pods.get("churn") or bed.new_pod("churn")
    pid = agent_pid(bed)
    for cycle in range(cycles):
        pod.container_id = f"{cycle:08x}" + "c" * 56
        bed.add(pod)
        bed.delete(pod)
        if cycle % sample_every == 0 or cycle == cycles - 1:
            result.samples.append((cycle, rss_kib(pid)))
    return result
