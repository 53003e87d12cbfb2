"""``contiv-lab env``: shell exports that point ``contiv-netctl`` at this lab.

etcd and the node addresses live in the lab's underlay namespace, so netctl enters it
(``CONTIV_NETCTL_NETNS``); each agent serves its REST on 127.0.0.1 inside its node's namespace,
which ``CONTIV_AGENTS`` says (``NODE=URL;netns=NAME``). etcd requires a client certificate:
``ETCDCTL_CACERT``/``ETCDCTL_CERT``/``ETCDCTL_KEY`` name netctl's read-only one.
"""

from __future__ import annotations

import shlex

from apps.lab.state import LabState


def exports(state: LabState) -> dict[str, str]:
    """The variables netctl reads, for this lab."""
    agents = ",".join(f"{n.name}=http://127.0.0.1:9999;netns={n.netns}"
                      for n in sorted(state.nodes.values(), key=lambda n: n.index))
    return {
        "ETCD_ENDPOINTS": state.etcd_endpoint,
        # etcd's mutual TLS with netctl's read-only certificate (etcdctl reads the same variables).
        "ETCDCTL_CACERT": str(state.pki / "ca.crt"),
        "ETCDCTL_CERT": str(state.pki / "netctl.crt"),
        "ETCDCTL_KEY": str(state.pki / "netctl.key"),
        "CONTIV_NETCTL_NETNS": state.underlay_ns,
        "CONTIV_AGENTS": agents,
    }


def shell(state: LabState) -> str:
    """``export K=V`` lines, quoted for sh."""
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in exports(state).items())
