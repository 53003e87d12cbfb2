"""``contiv-cni-install``: put ``contiv-cni``, the reference plugins it chains and its network
configuration on a node.

The vswitch DaemonSet's init container runs it with the host's CNI directories mounted (as
Contiv's ``install.sh`` did). It writes

* ``<bin-dir>/contiv-cni``: the static Go executable (``cni/``; in the image
  ``/opt/contiv/bin/contiv-cni``), which needs nothing on the node;
* every reference plugin the conflist names, and ``loopback`` (containerd runs it for every
  pod), copied from ``--plugins-dir`` (the image carries Debian's ``containernetworking-plugins``)
  when the node's bin dir lacks it; a plugin the node already has is never overwritten;
* the network configuration list (``contiv-cni`` with ``portmap`` chained for HostPort) as a
  *staged* file, ``--staged-conf`` (default ``/var/lib/contiv/cni/10-contiv.conflist``): the
  agent's pod manager puts it into the runtime's conf dir once its CNI server is serving and
  takes it away on a graceful stop (``docs/cni.md``, "The conflist's presence"). With
  ``--conf-dir-direct`` it is written straight into ``--conf-dir`` instead.

Each file is written to a temporary name in the same directory and renamed over the old one,
so a runtime never executes or reads a half-written file. ``--uninstall`` removes the binary
and the conflist (in the conf dir and staged; only a conflist of this network), and leaves the
reference plugins (the node may have had them before).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from apps.cni.binary import BinaryNotFoundError, cni_binary, is_executable_elf
from core.app import package_version

NETWORK_NAME = "contiv"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CONF_NAME = "10-contiv.conflist"
DEFAULT_STAGED_CONF = "/var/lib/contiv/cni/10-contiv.conflist"
#: Where Debian's containernetworking-plugins puts the reference plugins (also in the image).
DEFAULT_PLUGINS_DIR = "/usr/lib/cni"
#: Plugins the runtime itself needs besides those the conflist names.
RUNTIME_PLUGINS = ("loopback",)


class InstallError(RuntimeError):
    """The installation cannot be done (the message names the path and the reason)."""


def conflist(grpc_server: str, log_file: str, portmap: bool = True) -> dict[str, Any]:
    """The network configuration list: contiv-cni, then portmap for HostPort."""
    plugins: list[dict[str, Any]] = [{
        "type": "contiv-cni",
        "grpcServer": grpc_server,
        "logFile": log_file,
    }]
    if portmap:
        # No externalSetMarkChain: that names kube-proxy's KUBE-MARK-MASQ, which no node of
        # ours has (contiv replaces kube-proxy); portmap then makes its own mark/masq chains.
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
    return {"cniVersion": "1.0.0", "name": NETWORK_NAME, "plugins": plugins}


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    if not path.parent.is_dir():
        raise InstallError(f"{path.parent} is not a directory (is the host directory mounted?)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise InstallError(f"cannot write {path}: {err}") from err


def copy_executable(source: Path, target: Path) -> None:
    """Copy an executable to ``target`` atomically (0755)."""
    try:
        data = source.read_bytes()
    except OSError as err:
        raise InstallError(f"cannot read {source}: {err}") from err
    write_atomic(target, data, 0o755)


def reference_plugins(conf: dict[str, Any]) -> list[str]:
    """The plugins a node needs besides ``contiv-cni`` for ``conf``, in order."""
    names = [str(p["type"]) for p in conf["plugins"] if p["type"] != "contiv-cni"]
    return list(dict.fromkeys([*RUNTIME_PLUGINS, *names]))


def install_plugins(names: list[str], bin_dir: Path, plugins_dir: Path) -> list[Path]:
    """Copy each plugin the node's ``bin_dir`` lacks from ``plugins_dir``; returns those copied."""
    copied: list[Path] = []
    for name in names:
        target = bin_dir / name
        if target.exists() or target.is_symlink():
            continue  # the node's own plugin: never overwritten
        source = plugins_dir / name
        if not source.is_file():
            raise InstallError(f"plugin {name} is neither in {bin_dir} nor in {plugins_dir}")
        copy_executable(source, target)
        copied.append(target)
    return copied


def install(bin_dir: Path, conf_dir: Path, conf_name: str, grpc_server: str, log_file: str,
            portmap: bool = True, binary: Path | None = None,
            plugins_dir: Path = Path(DEFAULT_PLUGINS_DIR),
            staged_conf: Path | None = Path(DEFAULT_STAGED_CONF)) -> list[Path]:
    """Install the binary, the plugins the node lacks and the conflist (staged, or into
    ``conf_dir`` when ``staged_conf`` is None); returns the paths written."""
    if binary is None:
        try:
            binary = cni_binary()
        except BinaryNotFoundError as err:
            raise InstallError(str(err)) from err
    elif not is_executable_elf(binary):
        raise InstallError(f"{binary} is not an executable ELF file (the contiv-cni to install)")
    if not bin_dir.is_dir():
        raise InstallError(f"{bin_dir} is not a directory (is the host directory mounted?)")
    conf = conflist(grpc_server, log_file, portmap)
    target = bin_dir / "contiv-cni"
    copy_executable(binary, target)
    written = [target, *install_plugins(reference_plugins(conf), bin_dir, plugins_dir)]
    if staged_conf is None:
        conf_path = conf_dir / conf_name
    else:
        conf_path = staged_conf
        try:
            conf_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as err:
            raise InstallError(f"cannot create {conf_path.parent}: {err}") from err
    write_atomic(conf_path, (json.dumps(conf, indent=2) + "\n").encode(), 0o644)
    written.append(conf_path)
    return written


def _remove_conflist(conf: Path) -> bool:
    if not conf.exists():
        return False
    try:
        name = json.loads(conf.read_text()).get("name")
    except (OSError, ValueError, AttributeError) as err:
        raise InstallError(f"cannot read {conf}: {err}") from err
    if name != NETWORK_NAME:
        raise InstallError(f"{conf} configures network {name!r}, not {NETWORK_NAME!r}: not removed")
    conf.unlink()
    return True


def uninstall(bin_dir: Path, conf_dir: Path, conf_name: str,
              staged_conf: Path | None = Path(DEFAULT_STAGED_CONF)) -> list[Path]:
    """Remove the binary and the conflist, in the conf dir and staged (a conflist of another
    network is left alone, and so are the reference plugins)."""
    removed: list[Path] = []
    for conf in (conf_dir / conf_name, staged_conf):
        if conf is not None and _remove_conflist(conf):
            removed.append(conf)
    binary = bin_dir / "contiv-cni"
    if binary.exists():
        binary.unlink()
        removed.append(binary)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contiv-cni-install", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", type=Path, default=Path(os.environ.get("CNI_BIN_DIR", DEFAULT_BIN_DIR)),
                        help=f"the host's CNI binary directory (default {DEFAULT_BIN_DIR}, env CNI_BIN_DIR)")
    parser.add_argument("--conf-dir", type=Path, default=Path(os.environ.get("CNI_CONF_DIR", DEFAULT_CONF_DIR)),
                        help=f"the host's CNI configuration directory (default {DEFAULT_CONF_DIR}, env CNI_CONF_DIR)")
    parser.add_argument("--conf-name", default=DEFAULT_CONF_NAME)
    parser.add_argument("--grpc-server", default="/var/run/contiv/cni.sock",
                        help="the agent's CNI socket (the podmanager.socket_path setting)")
    parser.add_argument("--log-file", default="/var/run/contiv/cni.log")
    parser.add_argument("--no-portmap", action="store_true", help="do not chain the portmap plugin")
    parser.add_argument("--cni-binary", type=Path, default=None,
                        help="the contiv-cni executable to install (default: the built or image's one)")
    parser.add_argument("--plugins-dir", type=Path,
                        default=Path(os.environ.get("CNI_PLUGINS_SRC", DEFAULT_PLUGINS_DIR)),
                        help="where the reference plugins to copy are (default "
                             f"{DEFAULT_PLUGINS_DIR}, env CNI_PLUGINS_SRC)")
    parser.add_argument("--staged-conf", type=Path, default=Path(DEFAULT_STAGED_CONF),
                        help="where to stage the conflist for the agent to put in place (default "
                             f"{DEFAULT_STAGED_CONF}; the podmanager's staged_conflist)")
    parser.add_argument("--conf-dir-direct", action="store_true",
                        help="write the conflist straight into --conf-dir (no agent-managed presence)")
    parser.add_argument("--uninstall", action="store_true", help="remove what an install wrote")
    parser.add_argument("--version", action="store_true")
    args = parser.parse_args(argv)
    if args.version:
        print(f"contiv-cni-install {package_version()}")
        return 0
    try:
        if args.uninstall:
            for path in uninstall(args.bin_dir, args.conf_dir, args.conf_name, args.staged_conf):
                print(f"removed {path}")
        else:
            staged = None if args.conf_dir_direct else args.staged_conf
            for path in install(args.bin_dir, args.conf_dir, args.conf_name, args.grpc_server,
                                args.log_file, not args.no_portmap, args.cni_binary,
                                args.plugins_dir, staged):
                print(f"installed {path}")
    except InstallError as err:
        print(f"contiv-cni-install: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
