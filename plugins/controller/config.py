"""Settings of the controller plugin (YAML section ``controller``), after Contiv's controller.conf."""

from __future__ import annotations

from pydantic import Field

from core.plugin import PluginConfig


class DBWatcherConfig(PluginConfig):
    """Settings of the dbwatcher (nested under ``controller.dbwatcher``)."""

    enabled: bool = True
    """Watch etcd through the kvdb plugin; when False, only pushed events drive the agent."""

    delay_local_resync_s: float = Field(default=5.0, ge=0)
    """How long to wait for etcd at start before resyncing from the local mirror."""

    remote_db_probing_interval_s: float = Field(default=3.0, gt=0)
    """How often etcd is probed (while connected, and while waiting for it to come back)."""

    probe_timeout_s: float = Field(default=2.0, gt=0)
    """One probe or one resync listing slower than this counts as etcd being unreachable."""

    mirror_file: str = "/var/lib/contiv/controller-mirror.sqlite"
    """The crash-safe local copy (SQLite) of everything read from etcd; empty string disables it."""


class ControllerConfig(PluginConfig):
    """Settings of the event loop (Contiv's controller.conf, durations in seconds)."""

    event_queue_size: int = Field(default=1000, ge=1)
    """Capacity of the main event queue; a producer pushing into a full queue gets an error."""

    follow_up_queue_size: int = Field(default=1000, ge=1)
    """Capacity of the priority queue of follow-up events pushed from inside the loop."""

    delay_after_error_healing_s: float = Field(default=5.0, ge=0)
    """Delay between a failed event and the full resync that heals it."""

    enable_periodic_healing: bool = False
    """Run a downstream resync every ``periodic_healing_interval_s`` once started."""

    periodic_healing_interval_s: float = Field(default=60.0, gt=0)
    """Interval of the periodic (downstream) healing resync."""

    startup_resync_deadline_s: float = Field(default=30.0, gt=0)
    """Without a first resync by then the agent becomes not ready and held events fail."""

    record_event_history: bool = True
    """Keep processed events for ``GET /controller/event-history``."""

    event_history_age_limit_s: float = Field(default=86400.0, gt=0)
    """Events older than this are trimmed from the history (except the init period's)."""

    permanently_recorded_init_period_s: float = Field(default=3600.0, ge=0)
    """Events processed within this long after start are never trimmed (at most
    ``event_history_permanent_max`` of them: later ones are trimmed like any other)."""

    event_history_max_records: int = Field(default=1000, ge=1)
    """The history keeps at most this many events besides the permanent ones (the oldest go
    first): pod churn must not grow the agent's memory."""

    event_history_permanent_max: int = Field(default=200, ge=0)
    """At most this many events of the init period are kept forever (the first ones)."""

    enable_verification: bool = False
    """Debug mode: after each event, a follow-up ``Verification Resync`` re-runs the handlers'
    resync and reports any difference to the committed state (never committed itself)."""

    shutdown_timeout_s: float = Field(default=5.0, gt=0)
    """How long closing waits for the ``Shutdown`` event handlers get on agent stop."""

    dbwatcher: DBWatcherConfig = Field(default_factory=lambda: DBWatcherConfig())
    """The etcd watcher and its local mirror."""

    handler_order: list[str] = Field(default_factory=list)
    """Every event handler (plugin that is an ``EventHandler``) by name, in calling order;
    empty: the agent's start order."""
