"""Renderers of policy rules: :class:`Renderer` (what the policy plugin calls, every method
typed), :class:`RenderedRules` (what one made of the rules, for REST, gauges and internal state)
and :func:`make_renderer` (the one way to get a renderer: ``nftables`` for the Linux dataplane,
``vpp-acl`` for VPP). Both take the processor's :class:`~plugins.policy.processor.Delta`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from core.renderer import renderer_module
from plugins.controller.api import Transaction
from plugins.ipam.api import IPAMAPI
from plugins.ipnet.api import IPNetAPI
from plugins.policy.config import PolicyConfig
from plugins.policy.processor import Delta, LocalPodRules, SetContent

#: The module of each renderer (imported only when it is chosen).
MODULES = {"nftables": "plugins.policy.renderer.nftables", "vpp-acl": "plugins.policy.renderer.acl"}


@dataclass(frozen=True)
class RenderedRules:
    """What a renderer made of the local pods' rules.

    A *rule table* is where one pod's rules of one direction went: an nftables chain, or a VPP
    ACL; pods with equal rules share one.
    """

    #: The local pods some policy selects, by ``namespace/name``.
    pods: Mapping[str, LocalPodRules]
    #: Pod address -> the rule table traffic *to* the pod passes.
    ingress: Mapping[str, str]
    #: Pod address -> the rule table traffic *from* the pod passes.
    egress: Mapping[str, str]
    #: Rule table -> its rules, as the dataplane's text.
    tables: Mapping[str, tuple[str, ...]]
    #: Peer sets the tables reference -> their content (None: not known yet).
    peer_sets: Mapping[str, SetContent | None]


class Renderer(Protocol):
    """Keeps the rendered state of the local pods' rules and writes it into transactions."""

    #: The ``policy.renderer`` value that selects it.
    name: str

    def reset(self) -> None:
        """Forget everything (a resync follows with the whole state)."""
        ...

    def apply(self, delta: Delta) -> None:
        """Take the processor's changes (pods' rules and addresses, set contents)."""
        ...

    def set_local_pods(self, local: Mapping[str, str]) -> bool:
        """Every local pod's address (``namespace/name`` -> IP), selected or not; True when the
        rendering depends on them and they changed (the caller then writes even without a delta)."""
        ...

    def put_into(self, txn: Transaction) -> None:
        """Put the rendered values into ``txn`` (a renderer of many values: those that changed
        since the last call) and delete those no longer rendered."""
        ...

    def forget_written(self) -> None:
        """The transaction of the last :meth:`put_into` was reverted: the next one writes
        everything it renders again."""
        ...

    def rendered(self) -> RenderedRules:
        """What the current rules were made into."""
        ...


def make_renderer(name: str, config: PolicyConfig, ipam: IPAMAPI, ipnet: IPNetAPI | None) -> Renderer:
    """The renderer ``name``; raises :class:`core.renderer.RendererUnavailable` naming it when it
    is unknown or cannot be loaded."""
    module = renderer_module("policy", name, MODULES, setting="policy.renderer")
    renderer: Renderer = module.make(config, ipam, ipnet)
    return renderer
