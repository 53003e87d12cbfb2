"""Where netctl reads from: one etcd snapshot and each node's agent REST.

Reaching the cluster:

* ``ETCD_ENDPOINTS`` (``--etcd``): etcd, ``host:port`` comma-separated.
* ``CONTIV_NETCTL_NETNS`` (``--netns``): a network namespace netctl enters first (the lab's
  underlay, where etcd and the node addresses are).
* ``CONTIV_AGENTS`` (``--agent``, repeatable): ``NODE=URL`` or ``NODE=URL;netns=NAME`` pairs,
  comma-separated: where each agent's REST is (``netns=`` opens the connection in that
  namespace, e.g. a lab node's, where the agent serves on 127.0.0.1).
* Otherwise an agent is ``https://<node management address>:<CONTIV_AGENT_PORT or 9999>``,
  which needs the agent's ``http.address`` opened on the node (see docs/operations.md), with
  ``CONTIV_AGENT_TOKEN`` / ``CONTIV_AGENT_TOKEN_FILE`` as its bearer token.
* ``https://`` agents are verified against ``CONTIV_AGENT_CA`` (``--ca-file``; the system's CAs
  when unset) as ``CONTIV_AGENT_SERVER_NAME`` (``--agent-server-name``, default
  ``contiv-agent``: the agents share one certificate, node addresses being unknown at install;
  ``""``: the URL's host). A token is never sent over plain ``http://`` to a non-loopback host.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.kvdb.api import KVError
from core.kvdb.etcd import EtcdBroker, TLSFiles
from plugins.linux.netns import NamespaceNotFoundError, enter_namespace, entered

ROOT_PREFIX = "/vnf-agent/"
KSR_PREFIX = "/vnf-agent/contiv-ksr/"


class NetctlError(RuntimeError):
    """A failure netctl reports in one line; ``code`` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


#: Exit statuses (docs/operations.md): scripts can tell what went wrong.
EXIT_OK = 0
EXIT_PROBLEMS = 1  # ``check`` found problems
EXIT_USAGE = 2
EXIT_ETCD = 3  # etcd unreachable
EXIT_AGENT = 4  # a needed agent unreachable or failing
EXIT_NOT_FOUND = 5  # the node, pod or key asked for does not exist


def enter_netns(name: str) -> None:
    """Move this (still single-threaded) process into network namespace ``name``."""
    try:
        enter_namespace(name)
    except NamespaceNotFoundError as err:
        raise NetctlError(f"{err}", EXIT_USAGE) from err
    except OSError as err:
        raise NetctlError(f"cannot enter network namespace {name}: {err} (netctl needs root for it)",
                          EXIT_USAGE) from err


@contextmanager
def _in_netns(name: str | None) -> Iterator[None]:
    """Run the body in ``name`` (a socket made there stays there), then come back."""
    if not name:
        yield
        return
    try:
        with entered(name):
            yield
    except NamespaceNotFoundError as err:
        raise NetctlError(f"{err}", EXIT_USAGE) from err
    except PermissionError as err:
        raise NetctlError(f"cannot enter network namespace {name}: {err} (netctl needs root for it)",
                          EXIT_USAGE) from err


#: The name in the agents' shared REST certificate (DNS SAN; plus localhost and 127.0.0.1).
AGENT_SERVER_NAME = "contiv-agent"


@dataclass(frozen=True)
class AgentTLS:
    """How ``https://`` agents are verified: ``ca_file`` ("" = the system's CAs) and the name
    their certificate must hold (``server_name``; "" = the URL's host)."""

    ca_file: str = ""
    server_name: str = AGENT_SERVER_NAME

    def context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file or None)
        except (OSError, ssl.SSLError) as err:
            raise NetctlError(f"cannot read the agents' CA file {self.ca_file} (CONTIV_AGENT_CA): {err}",
                              EXIT_USAGE) from err
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class Agent:
    """Where one node's agent REST is."""

    node: str
    url: str
    netns: str | None = None
    token: str = ""
    tls: AgentTLS = field(default_factory=AgentTLS)

    def get(self, path: str, timeout_s: float = 5.0) -> Any:
        """GET ``path`` and decode its JSON; raises :class:`NetctlError` (EXIT_AGENT; EXIT_USAGE
        for a token that would go over plain HTTP to another host)."""
        parts = urlsplit(self.url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 9999
        where = f"the agent of {self.node} at {self.url}" + (f" (netns {self.netns})" if self.netns else "")
        secure = parts.scheme == "https"
        if self.token and not secure and not _loopback(host):
            raise NetctlError(f"refusing to send the bearer token to {where} over plain HTTP: use "
                              "https:// (the agent's http.tls_cert_file; verified with CONTIV_AGENT_CA)",
                              EXIT_USAGE)
        context = self.tls.context() if secure else None
        try:
            with _in_netns(self.netns):
                sock = socket.create_connection((host, port), timeout=timeout_s)
            if context is not None:
                try:
                    sock = context.wrap_socket(sock, server_hostname=self.tls.server_name or host)
                except BaseException:
                    sock.close()
                    raise
            conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
            conn.sock = sock
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            conn.request("GET", path, headers=headers)
            rsp = conn.getresponse()
            body = rsp.read()
            conn.close()
        except NetctlError:
            raise
        except ssl.SSLCertVerificationError as err:
            raise NetctlError(f"{where} failed TLS verification as {self.tls.server_name or host!r} against "
                              f"{self.tls.ca_file or 'the system CAs'} (CONTIV_AGENT_CA, "
                              f"CONTIV_AGENT_SERVER_NAME): {err.verify_message}", EXIT_AGENT) from err
        except ssl.SSLError as err:
            raise NetctlError(f"{where}: TLS failed: {err}", EXIT_AGENT) from err
        except OSError as err:
            raise NetctlError(f"{where} is unreachable: {err}", EXIT_AGENT) from err
        if rsp.status == 401:
            raise NetctlError(f"{where} refused the request: wrong or missing token "
                              "(CONTIV_AGENT_TOKEN)", EXIT_AGENT)
        if rsp.status == 404:
            raise NetctlError(f"{where} has no {path.split('?')[0]} (404)", EXIT_NOT_FOUND)
        if rsp.status >= 400:
            raise NetctlError(f"{where} answered {path}: {rsp.status} {body[:200]!r}", EXIT_AGENT)
        try:
            return json.loads(body)
        except ValueError as err:
            raise NetctlError(f"{where} answered {path} with no JSON: {err}", EXIT_AGENT) from err


def parse_agents(spec: str, token: str = "", tls: AgentTLS | None = None) -> dict[str, Agent]:
    """``node1=http://127.0.0.1:9999;netns=clab-n1,node2=...`` as agents by node."""
    agents: dict[str, Agent] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        node, sep, rest = item.partition("=")
        if not sep or not node or not rest:
            raise NetctlError(f"bad agent {item!r}: expected NODE=URL or NODE=URL;netns=NAME", EXIT_USAGE)
        url, _, opts = rest.partition(";")
        netns = None
        if opts:
            key, _, value = opts.partition("=")
            if key != "netns" or not value:
                raise NetctlError(f"bad agent option {opts!r} in {item!r}: only netns=NAME", EXIT_USAGE)
            netns = value
        if not url.startswith(("http://", "https://")):
            raise NetctlError(f"bad agent URL {url!r} for {node}: expected https://HOST:PORT", EXIT_USAGE)
        agents[node] = Agent(node, url, netns, token, tls or AgentTLS())
    return agents


@dataclass
class Snapshot:
    """Everything under ``/vnf-agent/`` at one etcd revision, JSON-decoded."""

    values: dict[str, Any] = field(default_factory=dict)
    revision: int = 0

    def under(self, prefix: str) -> dict[str, Any]:
        """Entries below ``prefix``, keyed by the rest of the key."""
        return {k[len(prefix):]: v for k, v in self.values.items() if k.startswith(prefix)}

    def k8s(self, kind: str) -> dict[str, Any]:
        return self.under(f"{KSR_PREFIX}k8s/{kind}/")

    def node_ids(self) -> dict[str, dict[str, Any]]:
        """VppNode records (``allocatedIDs``) by node name."""
        return {str(v.get("name")): v for v in self.under(f"{KSR_PREFIX}allocatedIDs/").values()
                if isinstance(v, dict)}

    def agent_labels(self) -> list[str]:
        """Every ``/vnf-agent/<label>/`` but KSR's."""
        labels = {k[len(ROOT_PREFIX):].split("/", 1)[0] for k in self.values}
        labels.discard("contiv-ksr")
        return sorted(labels)

    def allocations(self) -> list[dict[str, Any]]:
        """IPAM allocations of every node, each with ``node`` added."""
        out = []
        for label in self.agent_labels():
            for rest, value in sorted(self.under(f"{ROOT_PREFIX}{label}/ipam/allocations/").items()):
                if isinstance(value, dict):
                    out.append({"node": label, "key": rest, **value})
        return out

    def pod_records(self) -> list[dict[str, Any]]:
        """Pod manager records (interfaces, netns) of every node, each with ``node`` added."""
        out = []
        for label in self.agent_labels():
            for value in self.under(f"{ROOT_PREFIX}{label}/podmanager/pod/").values():
                if isinstance(value, dict):
                    out.append({"node": label, **value})
        return out


#: Where the chart mounts contiv-certs' files (netctl run in an agent pod finds them there).
POD_TLS_DIR = Path("/etc/contiv/tls")


def etcd_tls(environ: Mapping[str, str]) -> tuple[TLSFiles | None, bool]:
    """netctl's etcd client TLS: etcdctl's variables (``ETCDCTL_CACERT``, ``ETCDCTL_CERT``,
    ``ETCDCTL_KEY``), else the pod's netctl certificate; ``CONTIV_ETCD_INSECURE=true`` allows
    plain text. Returns (files or None, insecure)."""
    insecure = environ.get("CONTIV_ETCD_INSECURE", "").lower() in ("1", "true", "yes")
    names = ("ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY")
    given = [environ.get(n, "") for n in names]
    if all(given):
        return TLSFiles(Path(given[0]), Path(given[1]), Path(given[2])), insecure
    if any(given):
        missing = ", ".join(n for n, v in zip(names, given, strict=True) if not v)
        raise NetctlError(f"etcd TLS: {missing} not set (set all of {', '.join(names)})", EXIT_USAGE)
    if (POD_TLS_DIR / "netctl.crt").exists() and not insecure:
        return TLSFiles.from_dir(POD_TLS_DIR, "netctl"), False
    return None, insecure


def read_etcd(endpoints: list[str], timeout_s: float = 3.0, environ: Mapping[str, str] | None = None) -> Snapshot:
    """One consistent read of ``/vnf-agent/``; raises :class:`NetctlError` (EXIT_ETCD)."""
    if not endpoints:
        raise NetctlError("no etcd endpoints: set ETCD_ENDPOINTS or pass --etcd HOST:PORT "
                          "(against the lab: eval \"$(contiv-lab env)\")", EXIT_ETCD)
    tls, insecure = etcd_tls(os.environ if environ is None else environ)

    async def read() -> Snapshot:
        try:
            broker = EtcdBroker(endpoints, dial_timeout_s=timeout_s, op_timeout_s=timeout_s, tls=tls,
                                insecure=insecure)
        except KVError as err:
            raise NetctlError(f"{err} (netctl: set ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY, or "
                              "CONTIV_ETCD_INSECURE=true)", EXIT_USAGE) from None
        try:
            await broker.connect()
            kvs = await broker.list(ROOT_PREFIX)
            snap = Snapshot(revision=max((kv.mod_revision for kv in kvs), default=0))
            for kv in kvs:
                try:
                    snap.values[kv.key] = json.loads(kv.value)
                except ValueError:
                    snap.values[kv.key] = kv.value.decode(errors="replace")
            return snap
        finally:
            await broker.close()

    try:
        return asyncio.run(read())
    except KVError as err:
        raise NetctlError(f"etcd at {','.join(endpoints)} is unreachable: {err}", EXIT_ETCD) from err


def default_agents(snap: Snapshot, environ: Mapping[str, str], token: str,
                   tls: AgentTLS | None = None) -> dict[str, Agent]:
    """Agents at each node's management address (their REST opened on the node address, which
    the agent serves over HTTPS only)."""
    port = environ.get("CONTIV_AGENT_PORT", "9999")
    agents = {}
    for name, rec in snap.node_ids().items():
        addrs = rec.get("mgmt_addresses") or [str(a).split("/")[0] for a in rec.get("ip_addresses") or []]
        if addrs:
            agents[name] = Agent(name, f"https://{addrs[0]}:{port}", None, token, tls or AgentTLS())
    return agents
