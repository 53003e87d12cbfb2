"""Label selectors of ``networking.k8s.io/v1``: matching, and a hashable canonical form.

``matchLabels`` and ``matchExpressions`` are ANDed; an empty selector selects everything.
Operators: ``In`` (key present, value listed), ``NotIn`` (key absent or value not listed),
``Exists``, ``DoesNotExist``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from plugins.ksr.model import LabelSelector, SelectorOperator


class BadPolicyError(ValueError):
    """A policy the API server would reject (or we cannot enforce); it is skipped."""


@dataclass(frozen=True, order=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == SelectorOperator.IN:
            return value is not None and value in self.values
        if self.operator == SelectorOperator.NOT_IN:
            return value is None or value not in self.values
        if self.operator == SelectorOperator.EXISTS:
            return value is not None
        return value is None  # DoesNotExist


@dataclass(frozen=True, order=True, slots=True)
class Selector:
    """A label selector as a hashable value (``matchLabels`` become ``In`` requirements)."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def text(self) -> str:
        """kubectl's notation (``a=b,c in (d,e),!f``); ``<all>`` when empty."""
        if not self.requirements:
            return "<all>"
        parts = []
        for r in self.requirements:
            if r.operator == SelectorOperator.IN and len(r.values) == 1:
                parts.append(f"{r.key}={r.values[0]}")
            elif r.operator == SelectorOperator.IN:
                parts.append(f"{r.key} in ({','.join(r.values)})")
            elif r.operator == SelectorOperator.NOT_IN:
                parts.append(f"{r.key} notin ({','.join(r.values)})")
            elif r.operator == SelectorOperator.EXISTS:
                parts.append(r.key)
            else:
                parts.append(f"!{r.key}")
        return ",".join(parts)


def compile_selector(selector: LabelSelector, where: str) -> Selector:
    """The canonical form of ``selector``; :class:`BadPolicyError` naming ``where`` when invalid."""
    reqs = {Requirement(k, SelectorOperator.IN.value, (v,)) for k, v in selector.match_labels.items()}
    for expr in selector.match_expressions:
        op = SelectorOperator(expr.operator)
        if op in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not expr.values:
            raise BadPolicyError(f"{where}: operator {op.value} of key {expr.key!r} needs values")
        if op in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and expr.values:
            raise BadPolicyError(f"{where}: operator {op.value} of key {expr.key!r} takes no values")
        if not expr.key:
            raise BadPolicyError(f"{where}: a match expression has no key")
        reqs.add(Requirement(expr.key, op.value, tuple(sorted(set(expr.values)))))
    return Selector(tuple(sorted(reqs)))
