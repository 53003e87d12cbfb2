"""``contiv-certs``: the certificates of etcd's mutual TLS and the agents' REST, and etcd's users.

    contiv-certs generate --out DIR [--etcd-host H]... [--agent-node N]...
        write the CA and every certificate (pki.py's table) into DIR; files already there are
        kept, so running it again with another --agent-node adds that node's certificate
    contiv-certs secret --dir DIR [--name contiv-tls] [--namespace kube-system]
        print DIR's files as a Kubernetes Secret (never ca.key or root's pair)
    contiv-certs kube-secret [--name contiv-tls] [--root-name contiv-etcd-root] [--namespace NS]
        in a cluster: generate a set and create the Secrets unless NAME exists (the chart's Job)
    contiv-certs etcd-auth --endpoint HOST:PORT --dir DIR [--agent-node N]... [--wait S]
        as root (DIR/root.crt): etcd's users and roles (etcdauth.py), then enable auth

docs/etcd-tls.md explains the files, the users and how the chart uses them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from apps.certs import etcdauth
from apps.certs.pki import POD_FILES, ROOT_FILES, write_set
from core.kvdb.api import KVError, KVUnavailableError
from core.kvdb.etcd import EtcdBroker, TLSFiles


def secret_manifest(directory: Path, name: str, namespace: str, files: Sequence[str] = POD_FILES) -> dict[str, Any]:
    """A Secret holding ``files`` of ``directory`` (missing files are an error)."""
    missing = [f for f in files if not (directory / f).exists()]
    if missing:
        raise FileNotFoundError(f"{directory}: missing {', '.join(missing)} (run contiv-certs generate)")
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/part-of": "contiv"}},
            "data": {f: base64.b64encode((directory / f).read_bytes()).decode() for f in files}}


def kube_secret(name: str, root_name: str, namespace: str) -> str:
    """Create the pods' Secret and root's Secret from a fresh set unless ``name`` exists."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    config.load_incluster_config()  # type: ignore[no-untyped-call]
    core = client.CoreV1Api()
    try:
        core.read_namespaced_secret(name, namespace)
        return f"Secret {namespace}/{name} exists: kept"
    except ApiException as err:
        if err.status != 404:
            raise
    with tempfile.TemporaryDirectory(prefix="contiv-certs-") as tmp:
        write_set(Path(tmp))
        # root's first: a pod that sees the pods' Secret may expect etcd auth to follow.
        for secret_name, files in ((root_name, ROOT_FILES), (name, POD_FILES)):
            body = secret_manifest(Path(tmp), secret_name, namespace, files)
            try:
                core.create_namespaced_secret(namespace, body)  # type: ignore[arg-type]  # a dict is accepted
            except ApiException as err:
                if err.status != 409:
                    raise
    return f"Secrets {namespace}/{name} and {namespace}/{root_name} created"


async def etcd_auth(endpoint: str, directory: Path, agent_nodes: Sequence[str], wait_s: float) -> str:
    """Apply etcd's users and roles, retrying until etcd answers (up to ``wait_s``)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    delay = 0.2
    while True:
        broker = EtcdBroker([endpoint], dial_timeout_s=5, op_timeout_s=10,
                            tls=TLSFiles.from_dir(directory, "root"))
        try:
            await broker.connect()
            applied = await etcdauth.apply(broker, agent_nodes)
            return f"etcd auth enabled at {endpoint}: users root, {', '.join(sorted(applied))}"
        except KVUnavailableError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        finally:
            await broker.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="contiv-certs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="write the CA and certificates into a directory")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--etcd-host", action="append", default=[],
                     help="another name or address in etcd's certificates (besides contiv-etcd, localhost, 127.0.0.1)")
    gen.add_argument("--agent-node", action="append", default=[], help="also a per-node agent certificate")
    sec = sub.add_parser("secret", help="print a directory's pod files as a Kubernetes Secret")
    sec.add_argument("--dir", type=Path, required=True)
    sec.add_argument("--name", default="contiv-tls")
    sec.add_argument("--namespace", default="kube-system")
    kube = sub.add_parser("kube-secret", help="in a pod: create the Secrets unless they exist")
    kube.add_argument("--name", default="contiv-tls")
    kube.add_argument("--root-name", default="contiv-etcd-root")
    kube.add_argument("--namespace", default="kube-system")
    auth = sub.add_parser("etcd-auth", help="etcd's users and roles, then enable auth (as root)")
    auth.add_argument("--endpoint", required=True, help="HOST:PORT of etcd's client port")
    auth.add_argument("--dir", type=Path, required=True, help="directory with ca.crt, root.crt, root.key")
    auth.add_argument("--agent-node", action="append", default=[], help="also a per-node agent user")
    auth.add_argument("--wait", type=float, default=60.0, help="seconds to wait for etcd")
    auth.add_argument("--stay", action="store_true", help="then keep running (a sidecar)")
    return p


def run(args: argparse.Namespace) -> str:
    if args.cmd == "generate":
        written = write_set(args.out, etcd_hosts=args.etcd_host, agent_nodes=args.agent_node)
        return f"{args.out}: wrote {', '.join(p.name for p in written) or 'nothing (all present)'}"
    if args.cmd == "secret":
        return yaml.safe_dump(secret_manifest(args.dir, args.name, args.namespace), sort_keys=False).rstrip()
    if args.cmd == "kube-secret":
        return kube_secret(args.name, args.root_name, args.namespace)
    return asyncio.run(etcd_auth(args.endpoint, args.dir, args.agent_node, args.wait))


async def _forever() -> None:
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        print(run(args), flush=True)
    except (OSError, ValueError, KVError) as err:
        print(f"contiv-certs {args.cmd}: {err}", file=sys.stderr)
        return 1
    if getattr(args, "stay", False):
        asyncio.run(_forever())
    return 0


if __name__ == "__main__":
    sys.exit(main())
