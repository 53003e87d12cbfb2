"""``contiv-cni-install``: put ``contiv-cni`` and its network configuration on a node.

The vswitch DaemonSet's init container runs it with the host's CNI directories mounted (as
Contiv's ``install.sh`` did). It writes

* ``<bin-dir>/contiv-cni``: a self-contained zip application of the CNI binary (the project
  modules it imports and the pure-Python packages they import, e.g. ``hpack``), runnable by the
  node's ``python3`` (3.11 or later);
* ``<conf-dir>/<name>.conflist``: ``contiv-cni`` with ``portmap`` chained for HostPort
  (``portMappings`` capability), as Contiv's conflist did.

Each file is written to a temporary name in the same directory and renamed over the old one,
so a runtime never executes or reads a half-written file. ``--uninstall`` removes both (only
a conflist this tool wrote, recognised by its network name).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import io
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

from core.app import package_version

#: The CNI binary's main module; the zipapp holds it and every project module it imports.
CNI_MAIN = "apps.cni.main"
PROJECT_PACKAGES = ("apps", "plugins")
ZIP_MAIN = "import sys\nfrom apps.cni.main import main\nsys.exit(main())\n"
NETWORK_NAME = "contiv"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CONF_NAME = "10-contiv.conflist"


class InstallError(RuntimeError):
    """The installation cannot be done (the message names the path and the reason)."""


def source_root() -> Path:
    """The directory holding the ``apps`` and ``plugins`` packages of this installation."""
    return Path(__file__).resolve().parents[2]


def _module_file(root: Path, module: str) -> Path:
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports (anywhere in it, lazy imports included), absolute names."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def vendored_files(top: str, importer: Path) -> dict[str, Path]:
    """A pure-Python third-party package the CNI imports, as zip member name -> file; raises
    :class:`InstallError` when it is not installed or has compiled parts (it must run on any
    python3)."""
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        raise InstallError(f"{importer} imports {top}, which is not installed here")
    origin = Path(spec.origin)
    if spec.submodule_search_locations is None:
        if origin.suffix != ".py":
            raise InstallError(f"{importer} imports {top}, a compiled module: contiv-cni must run on a bare python3")
        return {origin.name: origin}
    pkg = origin.parent
    files = {f"{top}/{p.relative_to(pkg).as_posix()}": p for p in sorted(pkg.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts}
    compiled = [n for n in files if n.endswith((".so", ".pyd"))]
    if compiled:
        raise InstallError(f"{importer} imports {top}, which has compiled parts ({compiled[0]}): "
                           "contiv-cni must run on a bare python3")
    return {n: p for n, p in files.items() if n.endswith((".py", ".typed"))}


def cni_modules(root: Path | None = None, vendored: dict[str, Path] | None = None) -> dict[str, Path]:
    """The project modules the CNI binary needs, by dotted name (its packages' ``__init__``
    included). Third-party packages it imports (pure Python only) go into ``vendored``."""
    root = root or source_root()
    vendored = {} if vendored is None else vendored
    todo, done = [CNI_MAIN], {}
    while todo:
        module = todo.pop()
        if module in done:
            continue
        path = _module_file(root, module)
        if not path.exists():
            continue  # ``from pkg import name`` where name is not a module
        done[module] = path
        parent = module.rpartition(".")[0]
        if parent:
            todo.append(parent)
        for name in _imports(path, module):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                vendored.update(vendored_files(top, path))
    return done


def build_zipapp(interpreter: str = "/usr/bin/env python3") -> bytes:
    """The ``contiv-cni`` executable: a shebang line followed by a zip of the CNI modules."""
    root = source_root()
    buf = io.BytesIO()
    buf.write(f"#!{interpreter}\n".encode())
    vendored: dict[str, Path] = {}
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for _, path in sorted(cni_modules(root, vendored).items()):
            zf.writestr(str(path.relative_to(root)), path.read_text())
        for name, path in sorted(vendored.items()):
            zf.writestr(name, path.read_bytes())
        zf.writestr("__main__.py", ZIP_MAIN)
    return buf.getvalue()


def conflist(grpc_server: str, log_file: str, portmap: bool = True) -> dict[str, Any]:
    """The network configuration list: contiv-cni, then portmap for HostPort."""
    plugins: list[dict[str, Any]] = [{
        "type": "contiv-cni",
        "grpcServer": grpc_server,
        "logFile": log_file,
    }]
    if portmap:
        plugins.append({
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "externalSetMarkChain": "KUBE-MARK-MASQ",
        })
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


def install(bin_dir: Path, conf_dir: Path, conf_name: str, grpc_server: str, log_file: str,
            portmap: bool = True, interpreter: str = "/usr/bin/env python3") -> list[Path]:
    """Install the binary and the conflist; returns the paths written."""
    binary = bin_dir / "contiv-cni"
    write_atomic(binary, build_zipapp(interpreter), 0o755)
    conf = conf_dir / conf_name
    body = json.dumps(conflist(grpc_server, log_file, portmap), indent=2) + "\n"
    write_atomic(conf, body.encode(), 0o644)
    return [binary, conf]


def uninstall(bin_dir: Path, conf_dir: Path, conf_name: str) -> list[Path]:
    """Remove the binary and the conflist (a conflist of another network is left alone)."""
    removed: list[Path] = []
    conf = conf_dir / conf_name
    if conf.exists():
        try:
            name = json.loads(conf.read_text()).get("name")
        except (OSError, ValueError) as err:
            raise InstallError(f"cannot read {conf}: {err}") from err
        if name != NETWORK_NAME:
            raise InstallError(f"{conf} configures network {name!r}, not {NETWORK_NAME!r}: not removed")
        conf.unlink()
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
    parser.add_argument("--interpreter", default="/usr/bin/env python3",
                        help="the shebang of the installed binary (a python3 >= 3.11 on the host)")
    parser.add_argument("--uninstall", action="store_true", help="remove what an install wrote")
    parser.add_argument("--version", action="store_true")
    args = parser.parse_args(argv)
    if args.version:
        print(f"contiv-cni-install {package_version()}")
        return 0
    try:
        if args.uninstall:
            for path in uninstall(args.bin_dir, args.conf_dir, args.conf_name):
                print(f"removed {path}")
        else:
            for path in install(args.bin_dir, args.conf_dir, args.conf_name, args.grpc_server,
                                args.log_file, not args.no_portmap, args.interpreter):
                print(f"installed {path}")
    except InstallError as err:
        print(f"contiv-cni-install: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
