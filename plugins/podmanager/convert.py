"""Translation between the CNI gRPC messages, the AddPod result and the stored pod results."""

from __future__ import annotations

import json
from typing import Any

from plugins.podmanager.api import AddPod, PodID
from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest
from plugins.podmanager.cnicodes import CNICode, CNIError
from plugins.podmanager.records import (
    PodResult,
    RecordedInterface,
    RecordedIP,
    RecordedRoute,
)

POD_NAME_ARG = "K8S_POD_NAME"
POD_NAMESPACE_ARG = "K8S_POD_NAMESPACE"


def parse_cni_args(raw: str) -> dict[str, str]:
    """``CNI_ARGS`` ("K=V;K=V") as a dict; a pair without ``=`` is an error naming it."""
    args: dict[str, str] = {}
    for pair in raw.split(";"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CNIError(
                CNICode.INVALID_ENVIRONMENT, f"CNI_ARGS: {pair!r} is not of the form KEY=VALUE"
            )
        args[key] = value
    return args


def pod_id_from_args(raw: str) -> PodID:
    """The pod named by ``K8S_POD_NAME`` and ``K8S_POD_NAMESPACE`` in ``CNI_ARGS``."""
    args = parse_cni_args(raw)
    missing = [key for key in (POD_NAME_ARG, POD_NAMESPACE_ARG) if not args.get(key)]
    if missing:
        raise CNIError(
            CNICode.INVALID_ENVIRONMENT,
            f"CNI_ARGS lacks {' and '.join(missing)} (got {raw!r})",
        )
    return PodID(args[POD_NAME_ARG], args[POD_NAMESPACE_ARG])


def result_from_event(event: AddPod) -> PodResult:
    """The result the handlers filled into a processed AddPod event."""
    return PodResult(
        interfaces=[
            RecordedInterface(name=i.name, mac=i.mac, sandbox=i.sandbox) for i in event.interfaces
        ],
        ip_addresses=[
            RecordedIP(address=ip.address, gateway=ip.gateway, interface=ip.interface)
            for ip in event.ip_addresses
        ],
        routes=[RecordedRoute(dst=r.dst, gw=r.gw) for r in event.routes],
        dns={key: list(values) for key, values in event.dns.items()},
    )


def reply_from_result(result: PodResult) -> CNIReply:
    """A successful CNIReply carrying ``result``."""
    reply = CNIReply(result=0)
    for iface in result.interfaces:
        reply.interfaces.add(name=iface.name, mac=iface.mac, sandbox=iface.sandbox)
    for ip in result.ip_addresses:
        if not 0 <= ip.interface < len(reply.interfaces):
            raise CNIError(
                CNICode.INTERNAL,
                f"address {ip.address} refers to interface #{ip.interface}, "
                f"but the result has {len(reply.interfaces)} interfaces",
            )
        version = (
            CNIReply.Interface.IP.IPV6 if ":" in ip.address else CNIReply.Interface.IP.IPV4
        )
        reply.interfaces[ip.interface].ip_addresses.add(
            version=version, address=ip.address, gateway=ip.gateway
        )
    for route in result.routes:
        reply.routes.add(dst=route.dst, gw=route.gw)
    if result.dns:
        domain = result.dns.get("domain", [])
        reply.dns.add(
            domain=domain[0] if domain else "",
            nameservers=result.dns.get("nameservers", []),
            search=result.dns.get("search", []),
            options=result.dns.get("options", []),
        )
    return reply


def error_reply(error: CNIError) -> CNIReply:
    return CNIReply(result=error.code, error=error.msg, error_details=error.details)


def _list_of_dicts(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CNIError(CNICode.INVALID_NETWORK_CONFIG, f"prevResult.{key} must be a list of objects")
    return value


def result_from_prev_result(prev: Any) -> PodResult:
    """Parse a CNI ``prevResult`` (0.3.x, 0.4.0 or 1.0.0 layout) into a :class:`PodResult`."""
    if not isinstance(prev, dict):
        raise CNIError(CNICode.INVALID_NETWORK_CONFIG, "prevResult must be a JSON object")
    try:
        interfaces = [
            RecordedInterface(
                name=str(i["name"]), mac=str(i.get("mac", "")), sandbox=str(i.get("sandbox", ""))
            )
            for i in _list_of_dicts(prev, "interfaces")
        ]
        ips = [
            RecordedIP(
                address=str(ip["address"]),
                gateway=str(ip.get("gateway", "")),
                interface=int(ip.get("interface", 0)),
            )
            for ip in _list_of_dicts(prev, "ips")
        ]
        routes = [
            RecordedRoute(dst=str(r["dst"]), gw=str(r.get("gw", "")))
            for r in _list_of_dicts(prev, "routes")
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise CNIError(
            CNICode.INVALID_NETWORK_CONFIG, f"prevResult is malformed: {exc!r}"
        ) from exc
    return PodResult(interfaces=interfaces, ip_addresses=ips, routes=routes)


def prev_result_of(request: CNIRequest) -> PodResult | None:
    """The ``prevResult`` in the request's network configuration, if it has one."""
    if not request.extra_nw_config:
        return None
    try:
        conf = json.loads(request.extra_nw_config)
    except ValueError as exc:
        raise CNIError(
            CNICode.DECODE_FAILURE, f"network configuration is not valid JSON: {exc}"
        ) from exc
    if not isinstance(conf, dict) or conf.get("prevResult") is None:
        return None
    return result_from_prev_result(conf["prevResult"])
