"""A directory of Kubernetes manifests as a source (``source: dir``).

Every ``*.yaml``, ``*.yml`` and ``*.json`` file below the directory is read; YAML files may hold
several documents, and ``kind: List`` documents are expanded. Objects of the reflected kinds
(Namespace, Pod, Service, Endpoints, EndpointSlice, NetworkPolicy, Node) are delivered with
their ``status`` as written (pod IPs, node addresses), so a static or simulated cluster looks
like one served by an API server. Namespaced objects without a namespace get ``default``.

The directory is polled for changed files (modification time and size); after a change the
difference to the previous content is delivered as ADDED / MODIFIED / DELETED events. A file
that does not parse is reported and its previous content kept, so a half-written file never
deletes objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from plugins.ksr.convert import KINDS
from plugins.ksr.keys import NAMESPACED
from plugins.ksr.source import ADDED, DELETED, MODIFIED, Changed, Relisted, Sink, Source

log = logging.getLogger("contiv.ksr.dir")

SUFFIXES = (".yaml", ".yml", ".json")
#: (keyword, namespace, name) of an object.
Identity = tuple[str, str, str]


class ManifestError(ValueError):
    """A manifest file that cannot be read or parsed."""


def parse_manifest(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The reflected objects in one file as ``(keyword, object)``; other kinds are skipped."""
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ManifestError(f"{path}: {err}") from None
    out: list[tuple[str, dict[str, Any]]] = []
    for doc in _expand(documents):
        if not isinstance(doc, Mapping):
            raise ManifestError(f"{path}: a document is a {type(doc).__name__}, not an object")
        keyword = KINDS.get(str(doc.get("kind")))
        if keyword is None:
            log.debug("%s: skipping kind %s", path, doc.get("kind"))
            continue
        obj = copy.deepcopy(dict(doc))
        meta = obj.get("metadata")
        if keyword in NAMESPACED and isinstance(meta, dict) and not meta.get("namespace"):
            meta["namespace"] = "default"
        out.append((keyword, obj))
    return out


def _expand(documents: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for doc in documents:
        if doc is None:
            continue
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            out.extend(_expand(doc.get("items") or []))
        else:
            out.append(doc)
    return out


def _identity(keyword: str, obj: Mapping[str, Any], fallback: str) -> Identity:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("name"), str) and meta["name"]:
        return keyword, str(meta.get("namespace") or ""), meta["name"]
    # Nameless objects still flow (the reflector counts and skips them); give them a stable identity.
    return keyword, "", fallback


class DirSource(Source):
    """Reflects the manifests of a directory and follows their changes."""

    def __init__(self, directory: Path, poll_interval_s: float = 1.0) -> None:
        self.directory = directory
        self.poll_interval_s = poll_interval_s
        self._files: dict[Path, tuple[tuple[int, int], list[tuple[str, dict[str, Any]]]]] = {}
        self._current: dict[Identity, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        #: Files that failed to parse (count of failures) and the last error.
        self.errors = 0
        self.last_error = ""

    async def start(self, keywords: Sequence[str], sink: Sink) -> None:
        if not self.directory.is_dir():
            raise FileNotFoundError(f"source_dir {self.directory} is not a directory")
        wanted = frozenset(keywords)
        # The first read happens before start returns so a bad directory fails the start.
        current = await asyncio.to_thread(self._read)
        self._current = {i: o for i, o in current.items() if i[0] in wanted}
        for keyword in keywords:
            sink(keyword, Relisted([o for i, o in self._current.items() if i[0] == keyword]))
        self._task = asyncio.get_running_loop().create_task(self._follow(wanted, sink))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self, wanted: frozenset[str], sink: Sink) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            if not await asyncio.to_thread(self._changed):
                continue
            current = await asyncio.to_thread(self._read)
            current = {i: o for i, o in current.items() if i[0] in wanted}
            previous, self._current = self._current, current
            for identity, obj in current.items():
                old = previous.get(identity)
                if old is None:
                    sink(identity[0], Changed(ADDED, obj))
                elif old != obj:
                    sink(identity[0], Changed(MODIFIED, obj))
            for identity, obj in previous.items():
                if identity not in current:
                    sink(identity[0], Changed(DELETED, obj))

    def _scan(self) -> dict[Path, tuple[int, int]]:
        found: dict[Path, tuple[int, int]] = {}
        for path in sorted(self.directory.rglob("*")):
            if path.suffix in SUFFIXES and not path.name.startswith(".") and path.is_file():
                with contextlib.suppress(OSError):
                    st = path.stat()
                    found[path] = (st.st_mtime_ns, st.st_size)
        return found

    def _changed(self) -> bool:
        stamps = self._scan()
        return stamps != {p: s for p, (s, _) in self._files.items()}

    def _read(self) -> dict[Identity, dict[str, Any]]:
        stamps = self._scan()
        files: dict[Path, tuple[tuple[int, int], list[tuple[str, dict[str, Any]]]]] = {}
        for path, stamp in stamps.items():
            known = self._files.get(path)
            if known is not None and known[0] == stamp:
                files[path] = known
                continue
            try:
                files[path] = (stamp, parse_manifest(path))
            except ManifestError as err:
                self.errors += 1
                self.last_error = str(err)
                log.error("manifest not reflected (previous content kept): %s", err)
                # Remember the stamp so the same broken content is not re-reported every poll.
                files[path] = (stamp, known[1] if known is not None else [])
        self._files = files
        objects: dict[Identity, dict[str, Any]] = {}
        for path, (_, parsed) in files.items():
            for index, (keyword, obj) in enumerate(parsed):
                identity = _identity(keyword, obj, f"{path.name}#{index}")
                if identity in objects:
                    log.warning("%s %s/%s defined twice; %s wins", keyword, identity[1], identity[2], path)
                objects[identity] = obj
        return objects
