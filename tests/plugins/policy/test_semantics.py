"""The policy pipeline (cache -> processor -> configurator -> nftables renderer) against the
independent model, for every named case and randomized ones, on a simulated two-node cluster.

The rendered tables are evaluated by a small interpreter of their rules; the kernel runs the
same tables in the lab tests (tests/e2e/test_netpol.py).
"""

from __future__ import annotations

import copy

import pytest

from tests.plugins.policy import netpol_cases as nc
from tests.plugins.policy.harness import Cluster, apply_all, diff
from tests.plugins.policy.netpol_model import NetpolModel


def check(cluster: Cluster) -> None:
    model = NetpolModel(cluster.ns_labels(), cluster.model_pods(), cluster.policies.values())
    expected = model.matrix(nc.PORTS, nc.PROTOCOLS)
    got = cluster.matrix(cluster.tables())
    assert diff(expected, got) == []


def fresh_tables(cluster: Cluster) -> dict[str, object]:
    """The same final state computed from scratch (for the incremental-equals-full check)."""
    other = Cluster()
    for obj in cluster.namespaces.values():
        other.set_namespace(obj)
    for obj in cluster.pods.values():
        other.set_pod({k: v for k, v in obj.items() if k != "status"})
    apply_all(other, cluster.policies.values())
    return dict(other.tables())


@pytest.mark.parametrize("name", sorted(nc.CASES))
def test_case_matches_model(name: str) -> None:
    cluster = Cluster()
    policies = nc.CASES[name](cluster.ips)
    apply_all(cluster, policies)
    model = NetpolModel(cluster.ns_labels(), cluster.model_pods(), policies)
    expected = model.matrix(nc.PORTS, nc.PROTOCOLS)
    # Every case restricts something, except the one that re-opens everything after a deny.
    assert all(expected.values()) == (name == "allow-all-after-deny")
    assert diff(expected, cluster.matrix(cluster.tables())) == []


@pytest.mark.parametrize("seed", range(60))
def test_random_policies_match_model(seed: int) -> None:
    cluster = Cluster()
    apply_all(cluster, nc.random_policies(seed, cluster.ips))
    check(cluster)


@pytest.mark.parametrize("seed", range(20))
def test_incremental_changes_equal_full_recompute(seed: int) -> None:
    """Policies added, changed and removed, pods and namespaces relabelled, one at a time: the
    incrementally maintained tables always equal a from-scratch computation and the model."""
    import random

    rng = random.Random(seed)
    cluster = Cluster()
    pool = nc.random_policies(seed, cluster.ips, count=6)
    for step in range(12):
        action = rng.choice(["add", "change", "remove", "relabel-pod", "relabel-ns"])
        if action == "add" or not cluster.policies:
            cluster.set_policy(rng.choice(pool))
        elif action == "change":
            key = rng.choice(sorted(cluster.policies))
            changed = copy.deepcopy(rng.choice(pool))
            changed["metadata"] = dict(cluster.policies[key]["metadata"])
            cluster.set_policy(changed)
        elif action == "remove":
            cluster.set_policy(cluster.policies[rng.choice(sorted(cluster.policies))], delete=True)
        elif action == "relabel-pod":
            key = rng.choice(sorted(cluster.pods))
            obj = copy.deepcopy(cluster.pods[key])
            obj["metadata"]["labels"] = {"pod": rng.choice(nc.PODS)}
            cluster.set_pod({k: v for k, v in obj.items() if k != "status"})
        else:
            name = rng.choice(nc.NAMESPACES)
            cluster.set_namespace(nc.namespace_manifest(name, {"ns": rng.choice(nc.NAMESPACES)}))
        tables = cluster.tables()
        assert tables == fresh_tables(cluster), f"step {step} ({action}) diverged from a full recompute"
        check(cluster)


def test_pod_relabelled_into_and_out_of_selector() -> None:
    cluster = Cluster()
    apply_all(cluster, nc.CASES["from-pod-selector"](cluster.ips))
    check(cluster)
    cluster.set_pod(nc.pod_manifest("x", "c", {"pod": "b"}))  # x/c now allowed into x/a
    check(cluster)
    cluster.set_pod(nc.pod_manifest("x", "b", {"pod": "other"}))  # x/b no longer
    check(cluster)
    cluster.set_pod(nc.pod_manifest("x", "a", {"pod": "z"}))  # x/a no longer selected at all
    check(cluster)


def test_namespace_relabelled() -> None:
    cluster = Cluster()
    apply_all(cluster, nc.CASES["from-namespace-in"](cluster.ips))
    check(cluster)
    cluster.set_namespace(nc.namespace_manifest("z", {"ns": "y"}))
    check(cluster)
    cluster.set_namespace(nc.namespace_manifest("y", {"ns": "q"}))
    check(cluster)


def test_default_policy_types_include_egress_when_it_has_egress_rules() -> None:
    """Contiv made a policy without policyTypes Ingress-only; the API defaults to Ingress plus
    Egress when egress rules exist."""
    cluster = Cluster()
    apply_all(cluster, [nc.policy("x", "p", nc.pod_sel("a"), egress=[{"to": [{"podSelector": nc.pod_sel("b")}]}])])
    got = cluster.matrix(cluster.tables())
    assert got[("x/a", "x/b", 80, "tcp")] is True
    assert got[("x/a", "y/b", 80, "tcp")] is False  # egress isolated
    assert got[("x/b", "x/a", 80, "tcp")] is False  # and ingress isolated (no ingress rules)
    check(cluster)


def test_bad_policies_are_skipped_and_the_rest_keeps_working() -> None:
    cluster = Cluster()
    apply_all(cluster, nc.CASES["deny-ingress"](cluster.ips))
    bad_cidr = nc.policy("y", "bad-cidr", ingress=[{"from": [{"ipBlock": {"cidr": "10.300.0.0/16"}}]}])
    bad_except = nc.policy("y", "bad-except", ingress=[{"from": [{"ipBlock": {
        "cidr": "10.1.0.0/16", "except": ["192.168.0.0/24"]}}]}])
    bad_range = nc.policy("y", "bad-range", ingress=[{"ports": [{"port": 90, "endPort": 80}]}])
    assert "not a CIDR" in (cluster.set_policy(bad_cidr) or "")
    assert "not inside" in (cluster.set_policy(bad_except) or "")
    assert "endPort" in (cluster.set_policy(bad_range) or "")
    check(cluster)  # y is not isolated by the bad ones; x still is
    assert cluster.matrix(cluster.tables())[("x/a", "y/a", 80, "tcp")] is True


def test_rule_sets_are_shared_between_pods_with_the_same_policies() -> None:
    cluster = Cluster()
    apply_all(cluster, [nc.policy(ns, "deny", types=["Ingress"]) for ns in nc.NAMESPACES])
    tables = cluster.tables()
    for table in tables.values():
        assert len(table.elements) in (4, 5)  # one element group per isolated local pod
        assert len(table.chains) == 3  # the base chains (forward, input) and ONE rule set for all pods
    from_b = [{"from": [{"podSelector": nc.pod_sel("b")}]}]
    apply_all(cluster, [nc.policy("x", "from-b", nc.pod_sel("a"), ingress=from_b)])
    tables = cluster.tables()
    assert sum(len(t.chains) for t in tables.values()) == 7  # x/a got its own
