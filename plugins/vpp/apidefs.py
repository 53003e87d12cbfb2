"""Where the VPP binary-API message definitions (``*.api.json``) come from.

The project ships the definitions it uses in ``plugins/vpp/api`` (package data; VPP version,
licence and how to add a file: ``plugins/vpp/api/README.md``). On a node with VPP installed,
VPP's own ``/usr/share/vpp/api`` is preferred: it always matches the running VPP. Nothing
outside the package and the system directory is ever read.
"""

from __future__ import annotations

from pathlib import Path

#: Where VPP installs its API definitions on a node.
SYSTEM_API_DIR = Path("/usr/share/vpp/api")

#: The definitions shipped with this package (VPP v26.10-rc0, see ``api/README.md``).
BUNDLED_API_DIR = Path(__file__).resolve().parent / "api"

#: The one file every API tree has (the socket handshake lives in it).
MEMCLNT = "memclnt.api.json"


def has_definitions(directory: Path) -> bool:
    """True when ``directory`` (searched recursively) holds ``memclnt.api.json``."""
    return directory.is_dir() and next(directory.rglob(MEMCLNT), None) is not None


def bundled_api_dir() -> str:
    """The shipped definitions' directory."""
    return str(BUNDLED_API_DIR)


def default_api_dir() -> str:
    """``/usr/share/vpp/api`` when VPP is installed there, else the shipped definitions."""
    if has_definitions(SYSTEM_API_DIR):
        return str(SYSTEM_API_DIR)
    return bundled_api_dir()


def check_api_dir(api_dir: str) -> str:
    """Return ``api_dir`` when it holds a definition tree, else raise ``ValueError`` naming it."""
    if not has_definitions(Path(api_dir)):
        raise ValueError(
            f"vpp.api_dir {api_dir!r}: no {MEMCLNT} there (expected VPP's *.api.json tree, "
            f"e.g. {SYSTEM_API_DIR} or the shipped {BUNDLED_API_DIR})"
        )
    return api_dir
