"""``contiv-netctl``: the operator's view of a contiv cluster (etcd and every agent's REST)."""
