"""Registrable Kubernetes resources and the typed cache of the reflected objects handlers read.

KSR writes objects under ``/vnf-agent/contiv-ksr/<key prefix>``; each resource is registered by
keyword with its key prefix (relative to the KSR prefix) and its pydantic model, by whichever
plugin owns the model (the KSR models, nodesync's ``vppnode``...). Nothing here is hard-coded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

#: Where KSR (and nodesync) publish cluster state.
KSR_PREFIX = "/vnf-agent/contiv-ksr/"

log = logging.getLogger("contiv.controller.kubestate")


class ResourceRegistrationError(ValueError):
    """A resource registration clashes with another one or is malformed."""


@dataclass(frozen=True, slots=True)
class KubeResource:
    """One registered resource: ``keyword`` (e.g. ``pod``), its key prefix and model."""

    keyword: str
    key_prefix: str
    model: type[BaseModel]


class ResourceRegistry:
    """Resources by keyword; maps a relative key to its resource (longest prefix wins)."""

    def __init__(self) -> None:
        self._by_keyword: dict[str, KubeResource] = {}

    def register(self, keyword: str, key_prefix: str, model: type[BaseModel]) -> None:
        if not keyword:
            raise ResourceRegistrationError("resource keyword must not be empty")
        if not key_prefix or key_prefix.startswith("/"):
            raise ResourceRegistrationError(
                f"resource {keyword!r}: key prefix {key_prefix!r} must be relative to {KSR_PREFIX}"
            )
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ResourceRegistrationError(f"resource {keyword!r}: model must be a pydantic model")
        existing = self._by_keyword.get(keyword)
        if existing is not None:
            if existing.key_prefix == key_prefix and existing.model is model:
                return
            raise ResourceRegistrationError(
                f"resource {keyword!r} already registered with prefix {existing.key_prefix!r}"
            )
        for other in self._by_keyword.values():
            if other.key_prefix == key_prefix:
                raise ResourceRegistrationError(
                    f"resource {keyword!r}: prefix {key_prefix!r} already used by {other.keyword!r}"
                )
        self._by_keyword[keyword] = KubeResource(keyword, key_prefix, model)

    def get(self, keyword: str) -> KubeResource | None:
        return self._by_keyword.get(keyword)

    def keywords(self) -> list[str]:
        return sorted(self._by_keyword)

    def match(self, relative_key: str) -> KubeResource | None:
        """The resource owning ``relative_key`` (relative to the KSR prefix), or None."""
        best: KubeResource | None = None
        for resource in self._by_keyword.values():
            if relative_key.startswith(resource.key_prefix) and (
                best is None or len(resource.key_prefix) > len(best.key_prefix)
            ):
                best = resource
        return best

    def parse(self, relative_key: str, raw: bytes) -> tuple[KubeResource, str, BaseModel] | None:
        """Resource, key suffix and parsed object of a stored value; None when unknown or invalid.

        Invalid values are logged as errors and kept out of the state.
        """
        resource = self.match(relative_key)
        if resource is None:
            return None
        suffix = relative_key[len(resource.key_prefix) :]
        try:
            value = resource.model.model_validate_json(raw)
        except ValidationError as exc:
            log.error(
                "ignoring invalid %s value at %s%s: %s",
                resource.keyword,
                KSR_PREFIX,
                relative_key,
                exc.errors(include_url=False),
            )
            return None
        return resource, suffix, value


class KubeStateCache:
    """The reflected Kubernetes objects, by resource keyword and key suffix (a KubeStateReader).

    Written only by the event loop (resync replaces it, changes patch it); handlers read it.
    """

    def __init__(self) -> None:
        self._data: dict[str, dict[str, BaseModel]] = {}

    def list(self, resource: str) -> Mapping[str, Any]:
        return self._data.get(resource, {})

    def get(self, resource: str, name: str) -> Any | None:
        return self._data.get(resource, {}).get(name)

    def replace(self, snapshot: Mapping[str, Mapping[str, BaseModel]]) -> None:
        self._data = {resource: dict(items) for resource, items in snapshot.items()}

    def apply(self, resource: str, suffix: str, value: BaseModel | None) -> None:
        items = self._data.setdefault(resource, {})
        if value is None:
            items.pop(suffix, None)
        else:
            items[suffix] = value

    def resources(self) -> Iterable[str]:
        return list(self._data)

    def snapshot(self) -> dict[str, dict[str, BaseModel]]:
        """A shallow copy of everything (for describing state)."""
        return {resource: dict(items) for resource, items in self._data.items()}
