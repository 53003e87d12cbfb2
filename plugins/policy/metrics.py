"""Gauges of the policy plugin (registered in the agent's Prometheus registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge


class PolicyGauges:
    """``contiv_policy_*``: policies, skipped policies, isolated pods, rule sets, peer sets."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"contiv_policy_{name}", doc, registry=registry)

        self.policies = gauge("policies", "NetworkPolicies in force (cluster-wide)")
        self.bad_policies = gauge("bad_policies", "NetworkPolicies skipped because they are invalid")
        self.isolated_pods = gauge("isolated_pods", "Local pods isolated by at least one policy")
        self.rule_sets = gauge("rule_sets", "Distinct rule sets (nftables chains) of local pods")
        self.peer_sets = gauge("peer_sets", "Peer address sets in the policy table")
        self.set_elements = gauge("set_elements", "Elements of all peer sets")
