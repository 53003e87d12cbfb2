"""The transaction handlers fill for one event, and the merge of external configuration into it."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ValidationError


class EventTransaction:
    """Desired-state changes collected for one event: key -> value (None = delete).

    Implements :class:`plugins.controller.api.Transaction`. Later puts replace earlier ones, so a
    handler can read (``get``) and amend what an earlier handler put in the same event.
    """

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, BaseModel | None] = {}

    def put(self, key: str, value: BaseModel) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"transaction key must be a non-empty string, got {key!r}")
        if not isinstance(value, BaseModel):
            raise TypeError(f"value for {key} must be a pydantic model, got {type(value).__name__}")
        self._values[key] = value

    def delete(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"transaction key must be a non-empty string, got {key!r}")
        self._values[key] = None

    def get(self, key: str) -> BaseModel | None:
        return self._values.get(key)

    def values(self) -> Mapping[str, BaseModel | None]:
        return self._values

    def __len__(self) -> int:
        return len(self._values)

    def desired_state(self) -> dict[str, BaseModel]:
        """The complete desired state of a resync transaction (deletes dropped)."""
        return {key: value for key, value in self._values.items() if value is not None}


def merge_values(internal: BaseModel | None, external: BaseModel | None) -> BaseModel | None:
    """``internal`` with the fields the operator set in ``external`` on top (Contiv's proto merge).

    Only fields explicitly present in the external value override; when the types differ (or
    one side is missing) the external value wins, else the internal one stands.
    """
    if external is None:
        return internal
    if internal is None or type(internal) is not type(external):
        return external
    merged = internal.model_dump()
    merged.update(external.model_dump(exclude_unset=True))
    try:
        return type(internal).model_validate(merged)
    except ValidationError:
        return external


class ExternalConfig:
    """External configuration by source (``etcd`` for the dbwatcher): key -> value."""

    def __init__(self) -> None:
        self._sources: dict[str, dict[str, BaseModel]] = {}

    def replace(self, source: str, values: Mapping[str, BaseModel]) -> None:
        self._sources[source] = dict(values)

    def apply(self, source: str, updated: Mapping[str, BaseModel | None]) -> None:
        values = self._sources.setdefault(source, {})
        for key, value in updated.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value

    def lookup(self, key: str) -> BaseModel | None:
        """The value of the first source (in registration order) that has ``key``."""
        for values in self._sources.values():
            found = values.get(key)
            if found is not None:
                return found
        return None

    def keys(self) -> set[str]:
        return {key for values in self._sources.values() for key in values}

    def merge_into_update(
        self,
        txn: EventTransaction,
        changed_external: Mapping[str, BaseModel | None],
        internal_config: Mapping[str, BaseModel],
    ) -> None:
        """Merge external values into an update transaction (Contiv's step 8)."""
        if not self._sources and not changed_external:
            return
        touched = set(changed_external)
        for key in touched:
            base = txn.get(key) if key in txn.values() else internal_config.get(key)
            merged = merge_values(base, self.lookup(key))
            if merged is None:
                txn.delete(key)
            else:
                txn.put(key, merged)
        for key, value in list(txn.values().items()):
            if key in touched:
                continue
            external = self.lookup(key)
            if external is not None:
                merged = merge_values(value, external)
                assert merged is not None
                txn.put(key, merged)

    def merge_into_resync(self, txn: EventTransaction) -> None:
        """Merge every external value into a resync transaction."""
        for key in self.keys():
            merged = merge_values(txn.get(key), self.lookup(key))
            assert merged is not None
            txn.put(key, merged)
