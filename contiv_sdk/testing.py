"""Test helpers for plugin authors (part of the public API, like :mod:`contiv_sdk`).

* :func:`running_app` runs a whole app (e.g. the vswitch's spec) in-process with a config dict;
* :class:`KVScheduler` is the real scheduler, to drive a descriptor without an agent;
* :class:`MemoryDevice`, :class:`ItemDescriptor` and :class:`Item` are a dict "dataplane" with a
  descriptor, to give a value of yours a dependency to wait for;
* :class:`EventTransaction` is the controller's transaction, to call a handler's methods;
* :class:`EtcdServer` starts a real etcd on free loopback ports (``with EtcdServer() as etcd``);
  ``etcd.kvdb_config()`` is the kvdb section of a client of it (``insecure: true`` unless it was
  started with ``tls=EtcdTLS.from_dir(DIR)`` on the files of ``contiv-certs generate``).
"""

from __future__ import annotations

from core.etcdserver import EtcdServer, free_port
from core.testing import running_app
from plugins.controller.txn import EventTransaction
from plugins.kvscheduler.scheduler import KVScheduler, RetryPolicy
from plugins.kvscheduler.testing import ITEM_PREFIX, Item, ItemDescriptor, MemoryDevice, item_key

__all__ = [
    "ITEM_PREFIX",
    "EtcdServer",
    "EventTransaction",
    "Item",
    "ItemDescriptor",
    "KVScheduler",
    "MemoryDevice",
    "RetryPolicy",
    "free_port",
    "item_key",
    "running_app",
]
