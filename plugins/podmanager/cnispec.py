"""The CNI specification's side of a request, checked and answered by the agent.

``contiv-cni`` (Go, ``cni/``) forwards the invocation untouched: the CNI_* environment and the
network configuration from stdin. Here the agent checks them against the specification (the
errors name what is wrong, with the specification's codes) and builds what the binary prints:
the ADD result in the layout of the requested ``cniVersion`` or the error JSON. So the CNI
logic lives in one place, in Python, and the binary stays a thin static executable.
"""

from __future__ import annotations

import json
import os
from typing import Any

from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest
from plugins.podmanager.cnicodes import CNICode, CNIError

SUPPORTED_VERSIONS = ("0.3.1", "0.4.0", "1.0.0")
LATEST_VERSION = "1.0.0"
#: Versions in which the CHECK command exists.
CHECK_VERSIONS = ("0.4.0", "1.0.0")

_ID_PUNCTUATION = frozenset("_.-")


def valid_container_id(value: str) -> bool:
    """Letters, digits, '_', '.', '-', starting with a letter or digit (the spec's rule)."""
    return (
        value.isascii()
        and value[:1].isalnum()
        and all(c.isalnum() or c in _ID_PUNCTUATION for c in value)
    )


def valid_ifname(value: str) -> bool:
    """A Linux interface name: 1-15 characters, no '/', ':' or whitespace, not '.' or '..'."""
    return (
        0 < len(value) <= 15
        and value not in (".", "..")
        and not any(c in "/:" or c.isspace() for c in value)
    )


def parse_config(raw: str) -> dict[str, Any]:
    """The network configuration (stdin of the plugin), with the keys the agent relies on checked."""
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise CNIError(
            CNICode.DECODE_FAILURE, f"network configuration on stdin is not valid JSON: {exc}"
        ) from exc
    if not isinstance(config, dict):
        raise CNIError(CNICode.DECODE_FAILURE, "network configuration must be a JSON object")
    version = config.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CNIError(CNICode.INVALID_NETWORK_CONFIG, "network configuration lacks cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(
            CNICode.INCOMPATIBLE_VERSION,
            f"cniVersion {version!r} is not supported",
            f"supported versions: {', '.join(SUPPORTED_VERSIONS)}",
        )
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise CNIError(
            CNICode.INVALID_NETWORK_CONFIG, "network configuration lacks a non-empty 'name'"
        )
    ipam = config.get("ipam")
    if ipam is not None and not isinstance(ipam, dict):
        raise CNIError(CNICode.INVALID_NETWORK_CONFIG, "ipam must be a JSON object")
    if ipam and ipam.get("type"):
        raise CNIError(
            CNICode.UNSUPPORTED_FIELD,
            f"unsupported field ipam.type={ipam['type']!r}",
            "contiv-cni does not delegate IPAM; the agent assigns pod addresses",
        )
    return config


def _env(value: str, key: str) -> str:
    if not value:
        raise CNIError(CNICode.INVALID_ENVIRONMENT, f"environment variable {key} is not set")
    return value


def check_invocation(command: str, request: CNIRequest) -> dict[str, Any]:
    """Check a forwarded invocation (``command`` is ADD, DEL or CHECK) against the spec.

    Returns the parsed network configuration; raises :class:`CNIError` naming what is wrong.
    """
    config = parse_config(request.extra_nw_config)
    container_id = _env(request.container_id, "CNI_CONTAINERID")
    if not valid_container_id(container_id):
        raise CNIError(
            CNICode.INVALID_ENVIRONMENT,
            f"CNI_CONTAINERID {container_id!r} is invalid: use letters, digits, '_', '.', '-'",
        )
    ifname = _env(request.interface_name, "CNI_IFNAME")
    if not valid_ifname(ifname):
        raise CNIError(CNICode.INVALID_ENVIRONMENT, f"CNI_IFNAME {ifname!r} is not a valid name")
    _env(request.cni_path, "CNI_PATH")
    if command in ("ADD", "CHECK"):
        netns = _env(request.network_namespace, "CNI_NETNS")
        if not os.path.exists(netns):
            raise CNIError(CNICode.INVALID_ENVIRONMENT, f"CNI_NETNS {netns} does not exist")
    if command == "ADD":
        pairs = dict(p.partition("=")[::2] for p in request.extra_arguments.split(";") if p)
        missing = [k for k in ("K8S_POD_NAME", "K8S_POD_NAMESPACE") if not pairs.get(k)]
        if missing:
            raise CNIError(CNICode.INVALID_ENVIRONMENT, f"CNI_ARGS lacks {' and '.join(missing)}")
    if command == "CHECK":
        if config["cniVersion"] not in CHECK_VERSIONS:
            raise CNIError(
                CNICode.INCOMPATIBLE_VERSION,
                f"CHECK is not supported by cniVersion {config['cniVersion']}",
            )
        if not isinstance(config.get("prevResult"), dict):
            raise CNIError(
                CNICode.INVALID_NETWORK_CONFIG, "CHECK requires prevResult in the configuration"
            )
    return config


def requested_version(request: CNIRequest) -> str:
    """The cniVersion to answer in: the request's when it is one we speak, else the latest."""
    return request.version if request.version in SUPPORTED_VERSIONS else LATEST_VERSION


def error_document(code: int, msg: str, details: str, version: str) -> dict[str, Any]:
    """The specification's error object."""
    doc: dict[str, Any] = {"cniVersion": version, "code": code, "msg": msg}
    if details:
        doc["details"] = details
    return doc


def result_document(version: str, reply: CNIReply) -> dict[str, Any]:
    """The ADD result, in the layout of ``version``, from a successful ``CNIReply``."""
    legacy = version != "1.0.0"
    interfaces: list[dict[str, Any]] = []
    ips: list[dict[str, Any]] = []
    for index, iface in enumerate(reply.interfaces):
        entry = {"name": iface.name}
        if iface.mac:
            entry["mac"] = iface.mac
        if iface.sandbox:
            entry["sandbox"] = iface.sandbox
        interfaces.append(entry)
        for ip in iface.ip_addresses:
            item: dict[str, Any] = {"address": ip.address, "interface": index}
            if legacy:
                item = {"version": "6" if ip.version == CNIReply.Interface.IP.IPV6 else "4",
                        **item}
            if ip.gateway:
                item["gateway"] = ip.gateway
            ips.append(item)
    routes = []
    for route in reply.routes:
        entry = {"dst": route.dst}
        if route.gw:
            entry["gw"] = route.gw
        routes.append(entry)
    dns: dict[str, Any] = {}
    for d in reply.dns[:1]:
        if d.nameservers:
            dns["nameservers"] = list(d.nameservers)
        if d.domain:
            dns["domain"] = d.domain
        if d.search:
            dns["search"] = list(d.search)
        if d.options:
            dns["options"] = list(d.options)
    return {"cniVersion": version, "interfaces": interfaces, "ips": ips, "routes": routes,
            "dns": dns}


def fill_output(command: str, request: CNIRequest, reply: CNIReply) -> None:
    """Set ``reply.output``: what the binary prints for this reply."""
    version = requested_version(request)
    if reply.result != 0:
        doc = error_document(reply.result, reply.error, reply.error_details, version)
    elif command == "ADD":
        doc = result_document(version, reply)
    else:
        return
    reply.output = json.dumps(doc, separators=(",", ":"))
