"""The Kubernetes API as a source: list + watch through the official ``kubernetes`` client.

The client is blocking, so each resource is followed by its own worker thread: it lists (paged,
``limit``/``continue``), hands the full set to the sink, then watches from the list's
``resourceVersion`` with bookmarks enabled, re-opening the watch from the last version it saw
when the server ends it. ``410 Gone`` (version too old, as an HTTP status or as a watch ERROR
event) means re-list; any other failure backs off exponentially and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from plugins.ksr.source import (
    ADDED,
    DELETED,
    MODIFIED,
    Changed,
    RawObject,
    Relisted,
    Sink,
    Source,
)

log = logging.getLogger("contiv.ksr.api")

HTTP_GONE = 410
#: Seconds to wait for a TCP connection to the API server before reporting it blocked.
CONNECT_TIMEOUT_S = 5.0

ListFunction = Callable[..., Any]


def load_api_client(kubeconfig: Path | None) -> k8s_client.ApiClient:
    """An API client from ``kubeconfig``, else the in-cluster config, else ``~/.kube/config``."""
    if kubeconfig is not None:
        if not kubeconfig.is_file():
            raise FileNotFoundError(f"kubeconfig {kubeconfig} does not exist")
        api: k8s_client.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
        return api
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException:
        api = k8s_config.new_client_from_config()  # type: ignore[no-untyped-call]
        return api
    # One try per request: the follower backs off and retries itself, and reports each failure
    # (urllib3's default of 3 retries hid a blocked connect for 4 connect timeouts).
    configuration.retries = 0
    return k8s_client.ApiClient(configuration)


def list_functions(api: k8s_client.ApiClient) -> dict[str, ListFunction]:
    """The client's list (and watch) call of every reflected resource."""
    core = k8s_client.CoreV1Api(api)
    return {
        "namespace": core.list_namespace,
        "pod": core.list_pod_for_all_namespaces,
        "service": core.list_service_for_all_namespaces,
        "endpoints": core.list_endpoints_for_all_namespaces,
        "node": core.list_node,
        "endpointslice": k8s_client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces,
        "policy": k8s_client.NetworkingV1Api(api).list_network_policy_for_all_namespaces,
    }


class _Gone(Exception):
    """The resource version we asked for is too old: re-list."""


def _resource_version(obj: RawObject) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("resourceVersion") or "")


class ResourceFollower:
    """Lists and watches one resource in a worker thread and feeds the sink."""

    def __init__(
        self,
        keyword: str,
        list_fn: ListFunction,
        sink: Sink,
        *,
        page_size: int,
        watch_timeout_s: int,
        backoff_initial_s: float,
        backoff_max_s: float,
        on_problem: Callable[[], None] | None = None,
        server: str = "",
    ) -> None:
        self.keyword = keyword
        self._list_fn = list_fn
        self._sink = sink
        self._page_size = page_size
        self._watch_timeout_s = watch_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._stop = threading.Event()
        self._resp: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"ksr-{keyword}", daemon=True)
        self._on_problem = on_problem
        self._server = server
        #: How many times the resource was listed (the first time included).
        self.lists = 0
        self.errors = 0
        #: Why the last list or watch failed ("" once a list succeeds again).
        self.problem = ""

    def _set_problem(self, problem: str) -> None:
        changed = problem != self.problem
        self.problem = problem
        if changed and self._on_problem is not None:
            try:
                self._on_problem()
            except RuntimeError:  # the plugin's event loop is closed: it is shutting down
                pass

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            resp = self._resp
        if resp is not None:
            # Unblocks the worker's read of the watch stream (best effort: it also checks _stop).
            with contextlib.suppress(Exception):
                resp.shutdown()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        backoff = self._backoff_initial_s
        version: str | None = None
        log.info("%s: listing from the API server at %s", self.keyword, self._server or "(default)")
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                    self._set_problem("")
                version = self._watch(version)
                backoff = self._backoff_initial_s
            except _Gone:
                log.info("%s: resource version %s expired (410), re-listing", self.keyword, version)
                version = None
            except Exception as exc:  # noqa: BLE001 - any failure: back off and retry
                if self._stop.is_set():
                    break
                self.errors += 1
                where = f"the API server at {self._server}" if self._server else "the API server"
                self._set_problem(f"{where} failed: {exc}")
                log.warning("%s: list/watch at %s failed (%s), retrying in %.1fs", self.keyword,
                            self._server or "the API server", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)

    def _list(self) -> str:
        items: list[RawObject] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": self._page_size,
                "_preload_content": False,
                # A hung server must not block the thread for ever, and a connect that nothing
                # answers (an address nobody serves yet) must be reported soon.
                "_request_timeout": (CONNECT_TIMEOUT_S, 120),
            }
            if token:
                kwargs["_continue"] = token
            try:
                resp = self._list_fn(**kwargs)
            except ApiException as exc:
                if exc.status == HTTP_GONE:  # continue token expired: start the list over
                    items, token = [], None
                    continue
                raise
            body = json.loads(resp.data)
            items.extend(body.get("items") or [])
            meta = body.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                version = str(meta.get("resourceVersion") or "")
                break
        self.lists += 1
        self._sink(self.keyword, Relisted(items, version))
        return version

    def _watch(self, version: str) -> str:
        try:
            resp = self._list_fn(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=self._watch_timeout_s,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT_S, self._watch_timeout_s + 30),
            )
        except ApiException as exc:
            if exc.status == HTTP_GONE:
                raise _Gone() from None
            raise
        with self._lock:
            self._resp = resp
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    break
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == HTTP_GONE:
                        raise _Gone()
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
                new_version = _resource_version(obj)
                if new_version:
                    version = new_version
                if kind in (ADDED, MODIFIED, DELETED):
                    self._sink(self.keyword, Changed(kind, obj, time.monotonic()))
                # BOOKMARK: only the version moves on.
        finally:
            with self._lock:
                self._resp = None
            resp.release_conn()
        return version


class APISource(Source):
    """Follows the reflected resources on a Kubernetes API server.

    ``functions`` are the client's list calls by keyword (:func:`list_functions`).
    """

    def __init__(
        self,
        functions: Mapping[str, ListFunction],
        *,
        page_size: int = 500,
        watch_timeout_s: int = 300,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 1.0,
        server: str = "",
        on_problem: Callable[[], None] | None = None,
    ) -> None:
        self._functions = functions
        self._server = server
        self._on_problem = on_problem
        self._options = {
            "page_size": page_size,
            "watch_timeout_s": watch_timeout_s,
            "backoff_initial_s": backoff_initial_s,
            "backoff_max_s": backoff_max_s,
        }
        self.followers: dict[str, ResourceFollower] = {}

    async def start(self, keywords: Sequence[str], sink: Sink) -> None:
        for keyword in keywords:
            if keyword not in self._functions:
                raise ValueError(f"no Kubernetes API for resource {keyword!r}")
            follower = ResourceFollower(
                keyword,
                self._functions[keyword],
                sink,
                page_size=int(self._options["page_size"]),
                watch_timeout_s=int(self._options["watch_timeout_s"]),
                backoff_initial_s=float(self._options["backoff_initial_s"]),
                backoff_max_s=float(self._options["backoff_max_s"]),
                on_problem=self._on_problem,
                server=self._server,
            )
            self.followers[keyword] = follower
            follower.start()

    def problem(self, keyword: str) -> str:
        follower = self.followers.get(keyword)
        return follower.problem if follower is not None else ""

    async def stop(self) -> None:
        followers, self.followers = list(self.followers.values()), {}
        for follower in followers:
            follower._stop.set()
        await asyncio.gather(*(asyncio.to_thread(f.stop) for f in followers))
