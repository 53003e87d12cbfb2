"""etcd's address from the kubelet's kubeconfig (``CONTIV_ETCD_FROM_KUBECONFIG=PATH:PORT``).

The chart's default when ``etcd.endpoints`` is not given: contiv's one etcd member runs on the
control-plane node (host network), and every node's kubelet already knows that node's address,
as the host of its API server URL. The agent must not reach etcd through a Service, because
the agent itself is what serves Services: on a cold start nothing would answer.

``ETCD_ENDPOINTS``, when set, wins; this only fills it in.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ENV = "CONTIV_ETCD_FROM_KUBECONFIG"


class EtcdAddressError(RuntimeError):
    """The kubeconfig cannot give etcd's address (the message names the file and what is wrong)."""


def server_host(kubeconfig: Path) -> str:
    """The host of the current context's cluster server URL in ``kubeconfig``."""
    try:
        doc = yaml.safe_load(kubeconfig.read_text())
    except OSError as err:
        raise EtcdAddressError(f"cannot read the kubelet's kubeconfig {kubeconfig}: {err.strerror}; "
                               "set etcd.endpoints (ETCD_ENDPOINTS) instead") from None
    except yaml.YAMLError as err:
        raise EtcdAddressError(f"{kubeconfig} is not YAML: {err}") from None
    if not isinstance(doc, dict):
        raise EtcdAddressError(f"{kubeconfig} is not a kubeconfig (no mapping at the top)")
    clusters = {c.get("name"): c.get("cluster") or {} for c in doc.get("clusters") or [] if isinstance(c, dict)}
    contexts = {c.get("name"): c.get("context") or {} for c in doc.get("contexts") or [] if isinstance(c, dict)}
    current = contexts.get(doc.get("current-context"), {})
    cluster = clusters.get(current.get("cluster")) if current else None
    if cluster is None:
        if len(clusters) != 1:
            raise EtcdAddressError(f"{kubeconfig}: no current-context naming one of its clusters "
                                   f"({', '.join(map(str, clusters)) or 'none'})")
        cluster = next(iter(clusters.values()))
    server = str(cluster.get("server") or "")
    host = urlsplit(server).hostname
    if not host:
        raise EtcdAddressError(f"{kubeconfig}: the cluster's server {server!r} has no host")
    return host


def fill_etcd_endpoints(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Set ``ETCD_ENDPOINTS`` from ``CONTIV_ETCD_FROM_KUBECONFIG`` when it is unset; returns it."""
    spec = environ.get(ENV, "")
    if not spec or environ.get("ETCD_ENDPOINTS"):
        return environ.get("ETCD_ENDPOINTS")
    path, sep, port = spec.rpartition(":")
    if not sep or not path or not port.isdigit() or not 0 < int(port) < 65536:
        raise EtcdAddressError(f"{ENV}={spec!r} must be PATH:PORT (the kubelet's kubeconfig and etcd's client port)")
    host = server_host(Path(path))
    endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    environ["ETCD_ENDPOINTS"] = endpoint
    return endpoint
