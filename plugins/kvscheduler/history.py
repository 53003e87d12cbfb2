"""Transaction history: a bounded in-memory log, and per-key timelines computed from it.

Recording is cheap: the transaction's own result object is kept (no copies, no per-key
indexes); timelines are computed on request by scanning the retained records.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from plugins.kvscheduler.api import OperationRecord, TxnResult, ValueStatus


@dataclass(slots=True)
class TxnRecord:
    """A finished transaction and when it started (unix seconds)."""

    result: TxnResult
    started: float
    #: Keys and values the transaction was asked to apply (NB changes; empty for retries).
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TimelineEntry:
    """One transaction's effect on one key."""

    seq: int
    started: float
    kind: str
    status: ValueStatus | None
    operations: list[OperationRecord]


class TxnHistory:
    """The last ``max_records`` transactions not older than ``max_age_s``."""

    def __init__(self, max_records: int = 200, max_age_s: float = 86400.0) -> None:
        if max_records < 1:
            raise ValueError(f"history size must be at least 1, got {max_records}")
        if max_age_s <= 0:
            raise ValueError(f"history age must be positive, got {max_age_s}")
        self.max_age_s = max_age_s
        self._records: deque[TxnRecord] = deque(maxlen=max_records)

    def __len__(self) -> int:
        return len(self._records)

    def append(self, record: TxnRecord) -> None:
        self._records.append(record)
        self.trim()

    def trim(self, now: float | None = None) -> None:
        """Drop records older than the age limit."""
        limit = (time.time() if now is None else now) - self.max_age_s
        records = self._records
        while records and records[0].started < limit:
            records.popleft()

    def get(self, seq: int) -> TxnRecord | None:
        for record in reversed(self._records):
            if record.result.seq == seq:
                return record
        return None

    def records(self, since: float | None = None, until: float | None = None) -> list[TxnRecord]:
        """Records whose start time lies in [since, until] (unix seconds), oldest first."""
        return [
            r for r in self._records if (since is None or r.started >= since) and (until is None or r.started <= until)
        ]

    def timeline(self, key: str) -> list[TimelineEntry]:
        """Every retained transaction that touched ``key``, oldest first."""
        entries: list[TimelineEntry] = []
        for record in self._records:
            result = record.result
            status = result.values.get(key)
            ops = [op for op in result.operations if op.key == key]
            if status is None and not ops and key not in record.changes:
                continue
            entries.append(TimelineEntry(result.seq, record.started, result.kind.value, status, ops))
        return entries
