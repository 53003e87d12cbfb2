"""An HTTP fake of the Kubernetes list/watch API, for tests and benchmarks.

It speaks the wire protocol the ``kubernetes`` client uses: JSON lists with
``metadata.resourceVersion`` and paging (``limit``/``continue``), and watches as chunked streams
of ``{"type", "object"}`` lines that start after the requested ``resourceVersion``, send
``BOOKMARK`` events when asked for them, honour ``timeoutSeconds``, and answer a version older
than the compacted history with a ``410 Gone`` ERROR event (or an HTTP 410 status).

The state is kept by :class:`FakeKubernetes`; tests change it with :meth:`FakeKubernetes.apply`
and :meth:`FakeKubernetes.delete` exactly like a controller would change the real API.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import json
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

#: URL path -> (resource, list kind, apiVersion).
ROUTES: dict[str, tuple[str, str, str]] = {
    "/api/v1/namespaces": ("namespaces", "NamespaceList", "v1"),
    "/api/v1/pods": ("pods", "PodList", "v1"),
    "/api/v1/services": ("services", "ServiceList", "v1"),
    "/api/v1/endpoints": ("endpoints", "EndpointsList", "v1"),
    "/api/v1/nodes": ("nodes", "NodeList", "v1"),
    "/apis/discovery.k8s.io/v1/endpointslices": ("endpointslices", "EndpointSliceList", "discovery.k8s.io/v1"),
    "/apis/networking.k8s.io/v1/networkpolicies": (
        "networkpolicies", "NetworkPolicyList", "networking.k8s.io/v1"
    ),
}
RESOURCES = frozenset(r for r, _, _ in ROUTES.values())


class FakeKubernetes:
    """The fake's cluster state, its event history and the HTTP server that serves them."""

    def __init__(self, bookmark_interval_s: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # One wake-up per resource, so a change wakes only the watches of its resource.
        self._changed = {r: threading.Condition(self._lock) for r in RESOURCES}
        self._rv = 100
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in RESOURCES}
        self._versions: dict[str, list[int]] = {r: [] for r in RESOURCES}
        self._events_of: dict[str, list[tuple[str, dict[str, Any]]]] = {r: [] for r in RESOURCES}
        self._compacted = 0
        self._sorted: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._uids = itertools.count(1)
        self._generation = 0  # bumped to end every open watch
        self.bookmark_interval_s = bookmark_interval_s
        #: Answer a too-old watch with an HTTP 410 status instead of an ERROR event.
        self.gone_as_http_status = False
        #: Fail the next N list requests with HTTP 500.
        self.fail_lists = 0
        #: Requests seen: (resource, "list" | "watch", query).
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ksrfake", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.end_watches()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig file pointing at this fake (for processes and ``kubeconfig:`` settings)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    # ------------------------------------------------------------------ state changes

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    def apply(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace an object (by namespace/name); returns it as stored."""
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}")
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        with self._cond:
            self._rv += 1
            old = self._objects[resource].get(key)
            meta["resourceVersion"] = str(self._rv)
            meta.setdefault("uid", old["metadata"]["uid"] if old else f"uid-{next(self._uids)}")
            self._objects[resource][key] = stored
            self._record(resource, "MODIFIED" if old else "ADDED", stored)
            self._changed[resource].notify_all()
        return stored

    def apply_many(self, resource: str, objs: list[Mapping[str, Any]]) -> None:
        """Bulk :meth:`apply` without waking watchers per object (for large fixtures)."""
        with self._cond:
            for obj in objs:
                stored = copy.deepcopy(dict(obj))
                meta = stored.setdefault("metadata", {})
                key = (meta.get("namespace", ""), meta["name"])
                self._rv += 1
                old = self._objects[resource].get(key)
                meta["resourceVersion"] = str(self._rv)
                meta.setdefault("uid", f"uid-{next(self._uids)}")
                self._objects[resource][key] = stored
                self._record(resource, "MODIFIED" if old else "ADDED", stored)
            self._changed[resource].notify_all()

    def _record(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        self._versions[resource].append(self._rv)
        self._events_of[resource].append((kind, obj))

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        with self._cond:
            old = self._objects[resource].pop((namespace, name))
            self._rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._record(resource, "DELETED", gone)
            self._changed[resource].notify_all()

    def compact(self) -> None:
        """Forget all history: watches from any older version now get 410 Gone."""
        with self._cond:
            self._rv += 1  # like an API server restart: every version seen so far is now too old
            self._compacted = self._rv
            for resource in RESOURCES:
                self._versions[resource].clear()
                self._events_of[resource].clear()
            self._wake_all()

    def end_watches(self) -> None:
        """End every open watch stream normally (as the API server does on its timeout)."""
        with self._cond:
            self._generation += 1
            self._wake_all()

    def _wake_all(self) -> None:
        for cond in self._changed.values():
            cond.notify_all()

    def watch_count(self, resource: str) -> int:
        return sum(1 for r, kind, _ in self.requests if r == resource and kind == "watch")

    # ------------------------------------------------------------------ serving

    def list_page(self, resource: str, limit: int, token: str) -> tuple[list[dict[str, Any]], str, int]:
        with self._cond:
            if token:
                snapshot_rv, offset = (int(x) for x in token.split(":"))
                if snapshot_rv < self._compacted:
                    raise _GoneError()
            else:
                snapshot_rv, offset = self._rv, 0
            cached = self._sorted.get(resource)
            if cached is None or cached[0] != self._rv:
                # Sorting once per version keeps paging a large list linear.
                cached = (self._rv, [self._objects[resource][k] for k in sorted(self._objects[resource])])
                self._sorted[resource] = cached
            items = cached[1]
            page = items[offset: offset + limit] if limit else items[offset:]
            more = bool(limit) and offset + limit < len(items)
            return page, (f"{snapshot_rv}:{offset + limit}" if more else ""), snapshot_rv

    def check_watchable(self, since: int) -> None:
        """Raise :class:`_GoneError` when history after ``since`` was compacted."""
        with self._cond:
            if since < self._compacted:
                raise _GoneError()

    def watch_events(
        self, resource: str, since: int, timeout_s: float, bookmarks: bool
    ) -> Iterator[dict[str, Any]]:
        """Watch events of ``resource`` after version ``since`` until the timeout or end_watches."""
        deadline = time.monotonic() + timeout_s
        last_bookmark = time.monotonic()
        with self._cond:
            generation = self._generation
        position = since
        while True:
            out: list[dict[str, Any]] = []
            with self._cond:
                versions = self._versions[resource]
                start = bisect.bisect_right(versions, position)
                pending = self._events_of[resource][start:]
                if pending:
                    position = versions[-1]
                    out = [{"type": kind, "object": obj} for kind, obj in pending]
                else:
                    now = time.monotonic()
                    if now >= deadline or generation != self._generation:
                        return
                    interval = self.bookmark_interval_s if bookmarks else 0.0
                    if interval and now - last_bookmark >= interval:
                        last_bookmark = now
                        position = max(position, self._rv)
                        out = [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(position)}}}]
                    else:
                        timeout = min(deadline - now, interval) if interval else deadline - now
                        self._changed[resource].wait(timeout)
                        continue
            yield from out


class _GoneError(Exception):
    pass


def _gone_status() -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": "too old resource version",
        "reason": "Expired",
        "code": 410,
    }


def _make_handler(fake: FakeKubernetes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            route = ROUTES.get(parts.path)
            if route is None:
                self._json(404, {"kind": "Status", "code": 404, "message": f"no route {parts.path}"})
                return
            resource, list_kind, api_version = route
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            watch = query.get("watch") in ("true", "1")
            fake.requests.append((resource, "watch" if watch else "list", query))
            if watch:
                self._watch(resource, query)
            else:
                self._list(resource, list_kind, api_version, query)

        def _list(self, resource: str, list_kind: str, api_version: str, query: dict[str, str]) -> None:
            if fake.fail_lists > 0:
                fake.fail_lists -= 1
                self._json(500, {"kind": "Status", "code": 500, "message": "injected failure"})
                return
            try:
                items, token, rv = fake.list_page(resource, int(query.get("limit", 0)), query.get("continue", ""))
            except _GoneError:
                self._json(410, _gone_status())
                return
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if token:
                meta["continue"] = token
            self._json(200, {"kind": list_kind, "apiVersion": api_version, "metadata": meta, "items": items})

        def _watch(self, resource: str, query: dict[str, str]) -> None:
            since = int(query.get("resourceVersion") or fake.resource_version)
            timeout_s = float(query.get("timeoutSeconds", 300))
            bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
            try:
                fake.check_watchable(since)
                events: Iterator[dict[str, Any]] = fake.watch_events(resource, since, timeout_s, bookmarks)
            except _GoneError:
                if fake.gone_as_http_status:
                    self._json(410, _gone_status())
                    return
                # What the real API server does: 200, then one ERROR event with the 410 status.
                events = iter([{"type": "ERROR", "object": _gone_status()}])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            try:
                for event in events:
                    self._chunk(event)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            self.close_connection = True

        def _chunk(self, event: dict[str, Any]) -> None:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
