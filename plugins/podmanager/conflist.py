"""The network configuration's presence in the runtime's conf dir, owned by the agent.

``contiv-cni-install`` (the DaemonSet's init container) only *stages* the conflist. Once the
agent's CNI server is serving, :meth:`ConflistPresence.put` copies it into the conf dir (a
temporary file and an atomic rename, so the runtime never reads half a file); a graceful stop
removes it again, so kubelet and containerd report NetworkReady=false instead of a node that
claims to be ready while every pod's ADD fails. A crash leaves it in place: pods then get code
11 (try again later) until the agent is back, and the agent puts it again at every start (a
container restart without the init container included).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path


class ConflistError(RuntimeError):
    """The staged conflist is unusable or cannot be put in place (names the path and why)."""


class ConflistPresence:
    """Puts ``staged`` into ``conf_dir`` (same file name) and removes what it put."""

    def __init__(self, staged: Path, conf_dir: Path, log: logging.Logger) -> None:
        self.staged = staged
        self.conf_dir = conf_dir
        self.log = log
        self.placed: Path | None = None

    @property
    def target(self) -> Path:
        return self.conf_dir / self.staged.name

    def put(self) -> Path | None:
        """Put the staged conflist in place; None (and a warning) when nothing is staged."""
        try:
            data = self.staged.read_bytes()
        except FileNotFoundError:
            self.log.warning("no staged CNI network configuration at %s: %s left alone "
                             "(contiv-cni-install writes it)", self.staged, self.conf_dir)
            return None
        except OSError as err:
            raise ConflistError(f"cannot read the staged conflist {self.staged}: {err}") from err
        try:
            doc = json.loads(data)
        except ValueError as err:
            raise ConflistError(f"staged conflist {self.staged} is not JSON: {err}") from err
        if not isinstance(doc, dict) or not isinstance(doc.get("plugins"), list):
            raise ConflistError(f"staged conflist {self.staged} has no 'plugins' list")
        if not self.conf_dir.is_dir():
            raise ConflistError(f"CNI conf dir {self.conf_dir} is not a directory "
                                "(is the host's directory mounted?)")
        target = self.target
        tmp = self.conf_dir / f".{target.name}.{os.getpid()}.tmp"  # a name runtimes ignore
        try:
            tmp.write_bytes(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise ConflistError(f"cannot put the conflist into {target}: {err}") from err
        self.placed = target
        self.log.info("CNI network configuration %s in place (from %s)", target, self.staged)
        return target

    def remove(self) -> bool:
        """Remove the conflist this object put (if it is still there); True when removed."""
        if self.placed is None:
            return False
        target, self.placed = self.placed, None
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        except OSError as err:
            self.log.error("cannot remove the CNI network configuration %s: %s", target, err)
            return False
        self.log.info("CNI network configuration %s removed: the node reports its network "
                      "not ready until an agent serves again", target)
        return True
