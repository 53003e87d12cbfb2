"""Settings of the kvscheduler plugin (retry defaults are Ligato's: 1 s, 3 attempts, doubling)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from core.plugin import PluginConfig


class KVSchedulerConfig(PluginConfig):
    """How transactions are retried, verified and recorded."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)

    retry_period_s: float = Field(1.0, ge=0)
    """Delay before the first retry of a value whose operation failed with a retriable error."""

    retry_max_attempts: int = Field(3, ge=0)
    """Retries per value before it is left FAILED (0 disables retries)."""

    retry_backoff: float = Field(2.0, ge=1)
    """Each further retry waits this many times longer than the previous one (1: no back-off)."""

    verify: bool = False
    """Verification mode: after every transaction, read back the touched values and report any
    difference from what was applied as an error (for tests and CI; costs one retrieve per
    touched descriptor per transaction)."""

    record_history: bool = True
    """Keep finished transactions for ``/scheduler/txn-history`` and key timelines."""

    history_size: int = Field(200, ge=1)
    """How many transactions the history keeps at most."""

    history_age_s: float = Field(86400.0, gt=0)
    """Transactions older than this are dropped from the history."""
