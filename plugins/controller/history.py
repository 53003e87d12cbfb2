"""The record of processed events, served over REST and trimmed by age."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class HandlerRecord:
    """What one handler did with one event."""

    handler: str
    change: str = ""
    error: str = ""
    reverted: bool = False
    revert_error: str = ""


@dataclass(slots=True)
class EventRecord:
    """One processed event (Contiv's EventRecord)."""

    seq: int
    name: str
    description: str
    method: str
    txn_type: str
    direction: str
    follow_up_of: int | None
    started: float
    finished: float = 0.0
    handlers: list[HandlerRecord] = field(default_factory=list)
    #: Error that ended the event (handler, transaction or controller), empty when it succeeded.
    error: str = ""
    txn_error: str = ""
    #: The committed transaction: scheduler sequence number, resync mode, values and errors.
    txn: dict[str, Any] | None = None
    healing_scheduled: bool = False

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished - self.started)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration_ms"] = round(self.duration_s * 1000, 3)
        return out

    def log_block(self) -> str:
        """The record as the multi-line block the event loop logs."""
        follow = f" (follow-up of #{self.follow_up_of})" if self.follow_up_of is not None else ""
        lines = [
            f">>>>> EVENT #{self.seq}{follow}: {self.description}",
            f"      method={self.method} txn={self.txn_type} direction={self.direction}",
        ]
        for h in self.handlers:
            detail = h.change or "-"
            if h.error:
                detail += f" ERROR {h.error}"
            if h.reverted or h.revert_error:
                detail += f" reverted{' ERROR ' + h.revert_error if h.revert_error else ''}"
            lines.append(f"      {h.handler}: {detail}")
        if self.txn is not None:
            lines.append(
                f"      txn #{self.txn['seq']}: {len(self.txn['operations'])} operations"
            )
        if self.txn_error:
            lines.append(f"      txn error: {self.txn_error}")
        if self.healing_scheduled:
            lines.append("      healing resync scheduled")
        lines.append(
            f"<<<<< EVENT #{self.seq} {'FAILED' if self.error else 'done'} "
            f"in {self.duration_s * 1000:.1f} ms"
        )
        return "\n".join(lines)


class EventHistory:
    """Processed events, oldest first, bounded by count and age; the first ``permanent_max``
    events of the init period are kept forever."""

    def __init__(self, age_limit_s: float, permanent_init_period_s: float,
                 max_records: int = 1000, permanent_max: int = 200) -> None:
        self.age_limit_s = age_limit_s
        self.started = time.time()
        self.permanent_until = self.started + permanent_init_period_s
        self.permanent_max = permanent_max
        self._permanent: list[EventRecord] = []
        self._records: deque[EventRecord] = deque(maxlen=max_records)

    def append(self, record: EventRecord) -> None:
        if record.started <= self.permanent_until and len(self._permanent) < self.permanent_max:
            self._permanent.append(record)
        else:
            self._records.append(record)

    def trim(self, now: float | None = None) -> int:
        """Drop records older than the age limit; returns how many went."""
        cutoff = (time.time() if now is None else now) - self.age_limit_s
        dropped = 0
        while self._records and self._records[0].finished < cutoff:
            self._records.popleft()
            dropped += 1
        return dropped

    def records(self, since_seq: int = 0, limit: int | None = None) -> list[EventRecord]:
        selected = [r for r in (*self._permanent, *self._records) if r.seq >= since_seq]
        if limit is not None:
            selected = selected[-limit:] if limit > 0 else []
        return selected

    def __len__(self) -> int:
        return len(self._permanent) + len(self._records)
