"""The parts of the CNI specification ``contiv-cni`` implements: versions, inputs, outputs.

Imports only the standard library's cheapest modules: the binary runs once per pod operation
and must start fast.
"""

from __future__ import annotations

import os

from apps.cni import jsonlite as json
from plugins.podmanager.cnicodes import CNICode, CNIError

# Type-only imports: mypy treats any TYPE_CHECKING as true; at run time typing stays unloaded.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SUPPORTED_VERSIONS = ("0.3.1", "0.4.0", "1.0.0")
LATEST_VERSION = "1.0.0"
#: Versions in which the CHECK command exists.
CHECK_VERSIONS = ("0.4.0", "1.0.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")
DEFAULT_GRPC_SERVER = "/var/run/contiv/cni.sock"

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


class Invocation:
    """One validated CNI call: the command, the CNI_* environment and the network config."""

    __slots__ = ("args", "command", "config", "container_id", "ifname", "netns", "raw_config")

    def __init__(
        self,
        command: str,
        container_id: str,
        netns: str,
        ifname: str,
        args: str,
        config: dict[str, Any],
        raw_config: str,
    ) -> None:
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args
        self.config = config
        self.raw_config = raw_config

    @property
    def version(self) -> str:
        return str(self.config["cniVersion"])

    @property
    def grpc_server(self) -> str:
        return str(self.config.get("grpcServer") or DEFAULT_GRPC_SERVER)


def parse_config(raw: str) -> dict[str, Any]:
    """The network configuration from stdin, with the keys ``contiv-cni`` relies on checked."""
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
    server = config.get("grpcServer", DEFAULT_GRPC_SERVER)
    if not isinstance(server, str) or not server:
        raise CNIError(
            CNICode.INVALID_NETWORK_CONFIG,
            f"grpcServer must be a socket path or host:port, got {server!r}",
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


def _env(environ: Mapping[str, str], key: str) -> str:
    value = environ.get(key, "")
    if not value:
        raise CNIError(CNICode.INVALID_ENVIRONMENT, f"environment variable {key} is not set")
    return value


def parse_invocation(
    command: str, environ: Mapping[str, str], raw_config: str,
    config: dict[str, Any] | None = None,
) -> Invocation:
    """Validate the CNI_* variables and stdin of an ADD, DEL or CHECK.

    ``config`` is the already parsed ``raw_config`` (parsed here when not given).
    """
    if config is None:
        config = parse_config(raw_config)
    container_id = _env(environ, "CNI_CONTAINERID")
    if not valid_container_id(container_id):
        raise CNIError(
            CNICode.INVALID_ENVIRONMENT,
            f"CNI_CONTAINERID {container_id!r} is invalid: use letters, digits, '_', '.', '-'",
        )
    ifname = _env(environ, "CNI_IFNAME")
    if not valid_ifname(ifname):
        raise CNIError(CNICode.INVALID_ENVIRONMENT, f"CNI_IFNAME {ifname!r} is not a valid name")
    _env(environ, "CNI_PATH")
    netns = environ.get("CNI_NETNS", "")
    if command in ("ADD", "CHECK"):
        netns = _env(environ, "CNI_NETNS")
        if not os.path.exists(netns):
            raise CNIError(
                CNICode.INVALID_ENVIRONMENT, f"CNI_NETNS {netns} does not exist"
            )
    args = environ.get("CNI_ARGS", "")
    if command == "ADD":
        pairs = dict(p.partition("=")[::2] for p in args.split(";") if p)
        missing = [k for k in ("K8S_POD_NAME", "K8S_POD_NAMESPACE") if not pairs.get(k)]
        if missing:
            raise CNIError(
                CNICode.INVALID_ENVIRONMENT, f"CNI_ARGS lacks {' and '.join(missing)}"
            )
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
    return Invocation(command, container_id, netns, ifname, args, config, raw_config)


def error_json(error: CNIError, version: str) -> dict[str, Any]:
    """The specification's error object."""
    doc: dict[str, Any] = {"cniVersion": version, "code": error.code, "msg": error.msg}
    if error.details:
        doc["details"] = error.details
    return doc


def version_json(requested: str) -> dict[str, Any]:
    """The answer to VERSION."""
    return {"cniVersion": requested, "supportedVersions": list(SUPPORTED_VERSIONS)}


def result_json(version: str, reply: Any) -> dict[str, Any]:
    """The ADD result, in the layout of ``version``, from a ``CNIReply``."""
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
                item = {"version": "6" if ip.version == 1 else "4", **item}
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
    return {
        "cniVersion": version,
        "interfaces": interfaces,
        "ips": ips,
        "routes": routes,
        "dns": dns,
    }
