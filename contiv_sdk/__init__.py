"""The public plugin API: everything a third-party plugin imports from contiv-py, in one place.

A plugin package (see ``examples/``) imports only this module and :mod:`contiv_sdk.testing`
(for its tests); an import-linter contract keeps the examples on it. What is listed in
``__all__`` is stable: it keeps its name and meaning within a major version, and a removal or
an incompatible change is announced in ``docs/plugins.md`` one minor version before. Anything
else in ``core`` or ``plugins`` is internal and may change in any release.

The names come from four areas:

* the framework (``core``): :class:`Plugin`, :class:`PluginConfig`, :data:`hookimpl` and the
  plugins most others depend on (HTTP, metrics, the KV store);
* the controller: events, the handler contract :class:`EventHandler`, the transaction a
  handler fills, the Kubernetes state it reads, the pod events and models;
* the KV scheduler: the descriptor contract and its helper types;
* the Linux dataplane: namespace helpers and the link property a pod's interface derives
  (the key a value depends on to be created after the pod is wired).
"""

from __future__ import annotations

from core.hookspecs import hookimpl
from core.http import HTTPPlugin
from core.kvdb.plugin import KVDBPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin, PluginConfig
from plugins.controller.api import (
    AbortEventError,
    ControllerAPI,
    Direction,
    Event,
    EventHandler,
    EventMethod,
    FatalError,
    KubeStateReader,
    Transaction,
    UpdateTxnType,
)
from plugins.controller.events import KubeStateChange
from plugins.ksr.keys import RESOURCES as KUBE_RESOURCES
from plugins.ksr.model import Pod as KubePod
from plugins.kvscheduler.api import (
    Dependency,
    DerivedValue,
    Descriptor,
    InvalidValueError,
    KVSchedulerAPI,
    ModelSpec,
    Origin,
    ResyncMode,
    RetrievedValue,
    TransientError,
    TxnResult,
    ValueState,
    ValueStatus,
    ValueWithMetadata,
)
from plugins.linux.links import find_link
from plugins.linux.models import Veth, VethEnd, link_property_key
from plugins.linux.netns import (
    NamespaceNotFoundError,
    call_in_namespace,
    namespace_exists,
    namespace_label,
    netlink,
)
from plugins.nodesync.api import NodeUpdate
from plugins.podmanager.api import AddPod, DeletePod, LocalPod, PodID, PodManagerAPI

__all__ = [
    "KUBE_RESOURCES",
    "AbortEventError",
    "AddPod",
    "ControllerAPI",
    "DeletePod",
    "Dependency",
    "DerivedValue",
    "Descriptor",
    "Direction",
    "Event",
    "EventHandler",
    "EventMethod",
    "FatalError",
    "HTTPPlugin",
    "InvalidValueError",
    "KVDBPlugin",
    "KVSchedulerAPI",
    "KubePod",
    "KubeStateChange",
    "KubeStateReader",
    "LocalPod",
    "MetricsPlugin",
    "ModelSpec",
    "NamespaceNotFoundError",
    "NodeUpdate",
    "Origin",
    "Plugin",
    "PluginConfig",
    "PodID",
    "PodManagerAPI",
    "ResyncMode",
    "RetrievedValue",
    "Transaction",
    "TransientError",
    "TxnResult",
    "UpdateTxnType",
    "ValueState",
    "ValueStatus",
    "ValueWithMetadata",
    "Veth",
    "VethEnd",
    "call_in_namespace",
    "find_link",
    "hookimpl",
    "link_property_key",
    "namespace_exists",
    "namespace_label",
    "netlink",
]
