"""The fields of a raw Kubernetes object (a plain dict, camelCase as on the wire), read strictly:
every helper raises :class:`BadObjectError` naming the field that does not parse. The converters
(``convert``, ``convert_services``, ``convert_policy``) are written with them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugins.ksr import model as m

Obj = Mapping[str, Any]

class BadObjectError(ValueError):
    """A Kubernetes object whose fields do not parse; it is skipped and counted."""

def object_name(obj: Obj) -> tuple[str, str]:
    """``(namespace, name)`` of a raw object ('' where missing)."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return "", ""
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")

def as_map(value: Any, what: str) -> Obj:
    """An object field (absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadObjectError(f"{what} must be an object, not {type(value).__name__}")
    return value

def as_list(value: Any, what: str) -> list[Any]:
    """A list field (absent: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadObjectError(f"{what} must be a list, not {type(value).__name__}")
    return value

def required(obj: Obj, field: str, what: str) -> Any:
    """A required field; its absence is a bad object."""
    value = obj.get(field)
    if value is None:
        raise BadObjectError(f"{what}.{field} is missing")
    return value

def str_map(value: Any, what: str) -> dict[str, str]:
    """A string-to-string map field (labels, annotations, selectors)."""
    return {str(k): str(v) for k, v in as_map(value, what).items()}

def metadata(obj: Obj, namespaced: bool) -> tuple[str, str, Obj]:
    """``(name, namespace, metadata)``; a namespaced object without namespace is in ``default``."""
    meta = as_map(obj.get("metadata"), "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise BadObjectError("metadata.name is missing")
    namespace = meta.get("namespace") or ("default" if namespaced else "")
    if not isinstance(namespace, str):
        raise BadObjectError("metadata.namespace must be a string")
    return name, namespace, meta

def object_ref(value: Any) -> m.ObjectReference | None:
    """A ``targetRef`` (absent: None)."""
    if value is None:
        return None
    ref = as_map(value, "targetRef")
    return m.ObjectReference(
        kind=ref.get("kind", ""),
        namespace=ref.get("namespace", ""),
        name=ref.get("name", ""),
        uid=ref.get("uid", ""),
        api_version=ref.get("apiVersion", ""),
        resource_version=ref.get("resourceVersion", ""),
    )

def label_selector(value: Any, what: str) -> m.LabelSelector:
    """A ``LabelSelector`` (labels and expressions)."""
    sel = as_map(value, what)
    return m.LabelSelector(
        match_labels=str_map(sel.get("matchLabels"), f"{what}.matchLabels"),
        match_expressions=[
            m.LabelSelectorRequirement(
                key=e.get("key"), operator=e.get("operator"), values=as_list(e.get("values"), "values")
            )
            for e in as_list(sel.get("matchExpressions"), f"{what}.matchExpressions")
        ],
    )

def condition(status: Obj, kind: str) -> bool:
    """Whether ``status.conditions`` holds ``kind`` with status True."""
    for cond in as_list(status.get("conditions"), "status.conditions"):
        if as_map(cond, "condition").get("type") == kind:
            return bool(cond.get("status") == "True")
    return False
