"""Pure parts of the controller: transactions and external merge, resources, mirror, history."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from core.kvdb.api import KeyValue
from plugins.controller.history import EventHistory, EventRecord
from plugins.controller.kubestate import ResourceRegistrationError, ResourceRegistry
from plugins.controller.mirror import LocalMirror, MirrorError
from plugins.controller.txn import EventTransaction, ExternalConfig, merge_values


class Iface(BaseModel):
    name: str
    mtu: int = 1500
    enabled: bool = True


class Other(BaseModel):
    name: str


def test_transaction_put_get_amend_delete() -> None:
    txn = EventTransaction()
    txn.put("config/a", Iface(name="a"))
    current = txn.get("config/a")
    assert isinstance(current, Iface)
    txn.put("config/a", current.model_copy(update={"mtu": 9000}))
    txn.delete("config/b")
    assert txn.values() == {"config/a": Iface(name="a", mtu=9000), "config/b": None}
    assert txn.desired_state() == {"config/a": Iface(name="a", mtu=9000)}
    with pytest.raises(ValueError, match="non-empty"):
        txn.put("", Iface(name="x"))
    with pytest.raises(TypeError, match="pydantic model"):
        txn.put("config/c", {"name": "c"})  # type: ignore[arg-type]


def test_external_fields_override_only_what_the_operator_set() -> None:
    internal = Iface(name="a", mtu=1450, enabled=True)
    external = Iface.model_validate_json('{"name": "a", "enabled": false}')
    assert merge_values(internal, external) == Iface(name="a", mtu=1450, enabled=False)
    assert merge_values(None, external) is external
    assert merge_values(internal, None) is internal
    assert merge_values(internal, Other(name="a")) == Other(name="a")


@given(mtu=st.integers(576, 9000), ext_mtu=st.one_of(st.none(), st.integers(576, 9000)))
def test_merge_is_internal_with_external_fields_on_top(mtu: int, ext_mtu: int | None) -> None:
    raw = '{"name": "x"' + (f', "mtu": {ext_mtu}' if ext_mtu is not None else "") + "}"
    merged = merge_values(Iface(name="x", mtu=mtu), Iface.model_validate_json(raw))
    assert isinstance(merged, Iface)
    assert merged.mtu == (ext_mtu if ext_mtu is not None else mtu)


def test_external_config_merges_into_updates_and_resyncs() -> None:
    ext = ExternalConfig()
    ext.replace("etcd", {"config/a": Iface.model_validate_json('{"name": "a", "mtu": 9000}')})
    # A handler's value for an externally configured key gets the operator's fields.
    txn = EventTransaction()
    txn.put("config/a", Iface(name="a", enabled=False))
    ext.merge_into_update(txn, {}, {})
    assert txn.get("config/a") == Iface(name="a", mtu=9000, enabled=False)
    # The operator removes the value: the handler's last committed value comes back.
    ext.apply("etcd", {"config/a": None})
    txn = EventTransaction()
    ext.merge_into_update(txn, {"config/a": None}, {"config/a": Iface(name="a", mtu=1400)})
    assert txn.values() == {"config/a": Iface(name="a", mtu=1400)}
    # ...or the key goes when no handler wants it.
    txn = EventTransaction()
    ext.merge_into_update(txn, {"config/a": None}, {})
    assert txn.values() == {"config/a": None}
    # Resync: every external value is in the complete desired state.
    ext.apply("etcd", {"config/z": Other(name="z")})
    txn = EventTransaction()
    txn.put("config/y", Other(name="y"))
    ext.merge_into_resync(txn)
    assert txn.desired_state() == {"config/y": Other(name="y"), "config/z": Other(name="z")}


def test_resource_registry_matches_longest_prefix_and_keeps_invalid_values_out() -> None:
    reg = ResourceRegistry()
    reg.register("pod", "k8s/pod/", Iface)
    reg.register("podx", "k8s/pod/x/", Other)
    reg.register("pod", "k8s/pod/", Iface)  # the same registration twice is fine
    assert reg.match("k8s/pod/web/namespace/default").keyword == "pod"  # type: ignore[union-attr]
    assert reg.match("k8s/pod/x/1").keyword == "podx"  # type: ignore[union-attr]
    assert reg.match("status/gauges") is None
    parsed = reg.parse("k8s/pod/web/namespace/default", b'{"name": "web"}')
    assert parsed is not None and parsed[1] == "web/namespace/default" and parsed[2] == Iface(name="web")
    assert reg.parse("k8s/pod/bad", b'{"mtu": "lots"}') is None
    with pytest.raises(ResourceRegistrationError, match="already registered"):
        reg.register("pod", "k8s/pods/", Iface)
    with pytest.raises(ResourceRegistrationError, match="already used by 'pod'"):
        reg.register("pod2", "k8s/pod/", Iface)
    with pytest.raises(ResourceRegistrationError, match="pydantic"):
        reg.register("thing", "k8s/thing/", dict)  # type: ignore[arg-type]


def test_mirror_survives_reopen_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "mirror.sqlite"
    mirror = LocalMirror(path)
    mirror.open()
    mirror.replace([KeyValue("/a", b"1", 5), KeyValue("/b", b"2", 6)], 7)
    mirror.apply("/c", b"3", 8)
    mirror.apply("/a", None, 9)
    mirror.apply("/b", b"22", 4)  # an older revision never moves the mirror's revision back
    mirror.close()
    again = LocalMirror(path)
    again.open()
    kvs, revision = again.load()
    assert [(kv.key, kv.value) for kv in kvs] == [("/b", b"22"), ("/c", b"3")]
    assert revision == 9

    class Boom(Exception):
        pass

    def exploding() -> Iterator[KeyValue]:
        yield KeyValue("/x", b"x", 10)
        raise Boom

    with pytest.raises(Boom):
        again.replace(exploding(), 10)
    kvs, revision = again.load()
    assert [kv.key for kv in kvs] == ["/b", "/c"] and revision == 9  # rolled back, nothing half-written
    again.close()


def test_mirror_reports_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "mirror.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    mirror = LocalMirror(path)
    with pytest.raises(MirrorError, match=str(path)):
        mirror.open()
    with pytest.raises(MirrorError, match="not open"):
        mirror.load()
    assert sqlite3.sqlite_version  # the mirror needs nothing beyond the stdlib


def test_history_trims_by_age_but_keeps_the_init_period() -> None:
    history = EventHistory(age_limit_s=60, permanent_init_period_s=10)
    t0 = history.started

    def record(seq: int, at: float) -> EventRecord:
        return EventRecord(seq, "e", "e", "update", "best-effort", "forward", None, started=at, finished=at)

    history.append(record(0, t0 + 1))  # init period: permanent
    history.append(record(1, t0 + 100))
    history.append(record(2, t0 + 200))
    assert history.trim(now=t0 + 230) == 1
    assert [r.seq for r in history.records()] == [0, 2]
    assert [r.seq for r in history.records(limit=1)] == [2]
    assert [r.seq for r in history.records(since_seq=1)] == [2]


def test_history_is_bounded_by_count_too() -> None:
    """Pod churn in the first hour (the init period) must not grow the history without end."""
    history = EventHistory(age_limit_s=86400, permanent_init_period_s=3600,
                           max_records=50, permanent_max=10)
    t0 = history.started
    for seq in range(1000):
        at = t0 + seq
        history.append(EventRecord(seq, "e", "e", "update", "best-effort", "forward", None,
                                   started=at, finished=at))
    seqs = [r.seq for r in history.records()]
    assert len(history) == 60
    assert seqs == [*range(10), *range(950, 1000)]  # the first ones and the latest
