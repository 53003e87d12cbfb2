"""Services in the lab, as the API server and kube-controller-manager would handle them.

* :func:`default_service` fills what users leave out, like the API server: the namespace, the
  type, a ClusterIP from the service CIDR, NodePorts from 30000-32767, ``targetPort`` = ``port``,
  ``protocol: TCP``; so manifests from the Kubernetes documentation work unchanged. A bad value
  (a port outside 1-65535, a taken ClusterIP or NodePort) is refused with the reason.
* :func:`sync_endpoints` is the endpoint-controller stand-in: for every Service with a selector
  it writes the EndpointSlices of the matching pods (ready once wired, terminating while being
  deleted), resolving a named ``targetPort`` per pod from its ``containerPort`` names.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from apps.lab.errors import LabError
from apps.lab.state import LabState, remove_manifest, write_manifest
from core.naming import short_hash

SERVICE_CIDR = IPv4Network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)
MANAGED_BY = "contiv-lab-endpoint-controller"


def _objects(state: LabState, prefix: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(Path(state.manifests).glob(f"{prefix}-*.yaml")):
        try:
            obj = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def services(state: LabState) -> list[dict[str, Any]]:
    """Every Service manifest of the lab."""
    return _objects(state, "service")


def find_service(state: LabState, namespace: str, name: str) -> dict[str, Any]:
    for svc in services(state):
        meta = svc.get("metadata") or {}
        if meta.get("name") == name and (meta.get("namespace") or "default") == namespace:
            return svc
    raise LabError(f"no service {namespace}/{name} in the lab")


def _port_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise LabError(f"{what} {value!r} is not a port number (1-65535)")
    return value


def default_service(obj: dict[str, Any], state: LabState) -> dict[str, Any]:
    """A copy of the Service with the API server's defaults filled in (see module doc)."""
    svc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(obj))
    meta = svc.setdefault("metadata", {})
    meta.setdefault("namespace", "default")
    key = f"{meta['namespace']}/{meta.get('name')}"
    spec = svc.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        raise LabError(f"service {key}: unknown type {kind!r}")
    others = [s for s in services(state) if f"{(s.get('metadata') or {}).get('namespace', 'default')}/"
              f"{(s.get('metadata') or {}).get('name')}" != key]
    used_ips = {str((s.get("spec") or {}).get("clusterIP")) for s in others}
    used_ports = {p.get("nodePort") for s in others for p in (s.get("spec") or {}).get("ports") or []}
    if kind != "ExternalName":
        ip = spec.get("clusterIP")
        if ip in (None, ""):
            ip = next((str(a) for a in SERVICE_CIDR.hosts() if a.packed[-1] >= 10 and str(a) not in used_ips), None)
            if ip is None:
                raise LabError("the service CIDR is full")
        elif ip != "None":
            if IPv4Address(ip) not in SERVICE_CIDR:
                raise LabError(f"service {key}: clusterIP {ip} is not in the service CIDR {SERVICE_CIDR}")
            if ip in used_ips:
                raise LabError(f"service {key}: clusterIP {ip} is already allocated")
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
    spec.setdefault("sessionAffinity", "None")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        number = _port_number(port.get("port"), f"service {key}: port")
        port.setdefault("protocol", "TCP")
        if str(port["protocol"]).upper() not in ("TCP", "UDP", "SCTP"):
            raise LabError(f"service {key}: protocol {port['protocol']!r} is not TCP, UDP or SCTP")
        target = port.setdefault("targetPort", number)
        if isinstance(target, int):
            _port_number(target, f"service {key}: targetPort")
        if kind in ("NodePort", "LoadBalancer"):
            if port.get("nodePort"):
                np = _port_number(port["nodePort"], f"service {key}: nodePort")
                if np not in NODE_PORTS or np in used_ports:
                    raise LabError(f"service {key}: nodePort {np} is outside 30000-32767 or already allocated")
            else:
                free = next((p for p in NODE_PORTS if p not in used_ports), None)
                if free is None:
                    raise LabError("no free NodePort left")
                port["nodePort"] = free
            used_ports.add(port["nodePort"])
    if len({(p.get("port"), p.get("protocol")) for p in spec.get("ports") or []}) != len(spec.get("ports") or []):
        raise LabError(f"service {key}: two ports with the same port and protocol")
    return svc


def _resolve(target: Any, pod: dict[str, Any]) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def _matches(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def desired_slices(state: LabState, terminating: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Manifest file name -> EndpointSlice for every Service with a selector.

    ``terminating`` holds ``namespace/name`` of pods being deleted (served, not ready).
    """
    pods = [p for p in _objects(state, "pod") if (p.get("status") or {}).get("podIP")]
    out: dict[str, dict[str, Any]] = {}
    for svc in services(state):
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        selector = spec.get("selector") or {}
        ns, name = meta.get("namespace", "default"), meta.get("name")
        if not selector or spec.get("type") == "ExternalName":
            continue
        groups: dict[tuple[tuple[str, str, int], ...], list[dict[str, Any]]] = {}
        for pod in pods:
            pmeta = pod.get("metadata") or {}
            if (pmeta.get("namespace") or "default") != ns or not _matches(selector, pod):
                continue
            resolved = []
            for port in spec.get("ports") or []:
                number = _resolve(port.get("targetPort", port.get("port")), pod)
                if number is not None:
                    resolved.append((port.get("name") or "", str(port.get("protocol") or "TCP"), number))
            key = f"{ns}/{pmeta.get('name')}"
            gone = key in terminating
            groups.setdefault(tuple(resolved), []).append({
                "addresses": [pod["status"]["podIP"]],
                "conditions": {"ready": not gone, "serving": True, "terminating": gone},
                "nodeName": (pod.get("spec") or {}).get("nodeName", ""),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pmeta.get("name")},
            })
        for ports, endpoints in sorted(groups.items()):
            suffix = short_hash(repr(ports), 5)
            slice_name = f"{name}-{suffix}"
            out[f"endpointslice-{ns}-{slice_name}.yaml"] = {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": slice_name, "namespace": ns,
                             "labels": {"kubernetes.io/service-name": name,
                                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
                "endpoints": sorted(endpoints, key=lambda e: e["targetRef"]["name"]),
                "ports": [{"name": n, "protocol": p, "port": num} for n, p, num in ports],
            }
    return out


def sync_endpoints(state: LabState, terminating: frozenset[str] = frozenset()) -> list[str]:
    """Write the EndpointSlices that changed, remove the ones no longer wanted; returns what changed."""
    want = desired_slices(state, terminating)
    changed = []
    for existing in _objects(state, "endpointslice"):
        meta = existing.get("metadata") or {}
        if (meta.get("labels") or {}).get("endpointslice.kubernetes.io/managed-by") != MANAGED_BY:
            continue
        filename = f"endpointslice-{meta.get('namespace')}-{meta.get('name')}.yaml"
        if filename not in want:
            remove_manifest(state, filename)
            changed.append(f"-{filename}")
        elif want[filename] == existing:
            del want[filename]
    for filename, obj in sorted(want.items()):
        write_manifest(state, filename, obj)
        changed.append(f"+{filename}")
    return changed
