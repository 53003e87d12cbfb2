"""A test-only southbound: a dict "device" and a descriptor for it (for any team's tests).

``MemoryDevice`` holds objects by key, remembers whether each is ours (created through the
descriptor) or foreign, logs every operation, and can be told to fail::

    device = MemoryDevice()
    scheduler = KVScheduler(verify=True)
    scheduler.register_descriptor(ItemDescriptor(device))
    device.fail("create", ITEM_PREFIX + "a", retriable=True, times=2)
    await scheduler.commit({ITEM_PREFIX + "a": Item(name="a")})

``Item`` values declare their own dependencies (exact keys and any-of prefixes) and derived
values, so tests can build any graph without writing a descriptor. More value types (with
their own prefixes) come from :func:`item_descriptor_class`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from plugins.kvscheduler.api import (
    Dependency,
    DerivedValue,
    Descriptor,
    InvalidValueError,
    ModelSpec,
    Origin,
    RetrievedValue,
    TransientError,
    ValueWithMetadata,
)


class Item(BaseModel):
    """A test value: a name, a payload, and the relations it declares."""

    model_config = ConfigDict(frozen=True)

    name: str
    data: str = ""
    #: Exact keys this value depends on.
    depends_on: tuple[str, ...] = ()
    #: Groups of key prefixes; each group is one any-of dependency.
    depends_on_any: tuple[tuple[str, ...], ...] = ()
    #: Derived values: key -> payload (an :class:`Item` named after the key's last segment).
    derived: tuple[tuple[str, str], ...] = ()
    #: Changing this field cannot be done in place (update_needs_recreate).
    kind: str = ""
    #: Keys of ``depends_on`` whose deletion removes this value from the device too
    #: (``Dependency.removed_with``; for a derived key, the deletion of its base).
    removed_with: tuple[str, ...] = ()


class DeviceError(Exception):
    """A fatal (non-retriable) device failure."""


@dataclass(slots=True)
class DeviceObject:
    value: BaseModel
    owned: bool = True


@dataclass(slots=True)
class _FailRule:
    op: str
    key: str | None
    retriable: bool
    times: int | None


@dataclass
class MemoryDevice:
    """The "dataplane" of the test descriptor: a dict of objects with failure injection."""

    objects: dict[str, DeviceObject] = field(default_factory=dict)
    #: Every successful operation in order: (op, key).
    log: list[tuple[str, str]] = field(default_factory=list)
    #: Operations that failed on purpose: (op, key).
    failures: list[tuple[str, str]] = field(default_factory=list)
    _rules: list[_FailRule] = field(default_factory=list)

    def fail(self, op: str, key: str | None = None, *, retriable: bool = True, times: int | None = 1) -> None:
        """Make the next ``times`` (None: all) ``op`` calls ("create", "update", "delete",
        "retrieve") on ``key`` (None: any key) fail with a retriable or a fatal error."""
        if op not in ("create", "update", "delete", "retrieve"):
            raise ValueError(f"unknown device operation {op!r}")
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        self._rules.append(_FailRule(op, key, retriable, times))

    def clear_failures(self) -> None:
        self._rules.clear()

    def check(self, op: str, key: str) -> None:
        """Raise the injected error for ``op`` on ``key``, if any rule matches."""
        for rule in self._rules:
            if rule.op == op and (rule.key is None or rule.key == key):
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
                self.failures.append((op, key))
                if rule.retriable:
                    raise TransientError(f"injected retriable {op} failure on {key}")
                raise DeviceError(f"injected fatal {op} failure on {key}")

    def put_foreign(self, key: str, value: BaseModel) -> None:
        """An object someone else created (read back as FROM_SB, never ours to touch)."""
        self.objects[key] = DeviceObject(value, owned=False)

    def remove_riders(self, key: str, value: BaseModel) -> None:
        """Drop what goes with ``key`` (its ``removed_with`` dependents), logged "gone-with"."""
        gone = {key, *(k for k, _ in getattr(value, "derived", ()))}
        changed = True
        while changed:
            changed = False
            for other, obj in list(self.objects.items()):
                with_ = getattr(obj.value, "removed_with", ())
                if obj.owned and any(k in gone for k in with_):
                    del self.objects[other]
                    self.log.append(("gone-with", other))
                    gone.add(other)
                    gone.update(k for k, _ in getattr(obj.value, "derived", ()))
                    changed = True

    def owned(self) -> dict[str, BaseModel]:
        return {k: o.value for k, o in self.objects.items() if o.owned}


class ItemDescriptor(Descriptor[Item]):
    """Descriptor of :class:`Item` values on a :class:`MemoryDevice`.

    ``create`` refuses to overwrite an existing object and ``delete`` a missing one, like a
    real dataplane would. Metadata is a per-descriptor counter (like an interface index).
    """

    name: ClassVar[str] = "test-item"
    spec: ClassVar[ModelSpec] = ModelSpec("test", "v1", "item")
    model: ClassVar[type[BaseModel]] = Item
    with_metadata: ClassVar[bool] = True

    def __init__(self, device: MemoryDevice, *, invalid_data: str = "invalid") -> None:
        self.device = device
        #: Values whose ``data`` equals this are rejected by ``validate``.
        self.invalid_data = invalid_data
        self._next_index = 1

    def value_name(self, value: Item) -> str:
        return value.name

    def validate(self, key: str, value: Item) -> None:
        if value.data == self.invalid_data:
            raise InvalidValueError(key, f"data {value.data!r} is not allowed")

    async def create(self, key: str, value: Item) -> Any:
        self.device.check("create", key)
        if key in self.device.objects:
            raise DeviceError(f"{key} already exists")
        self.device.objects[key] = DeviceObject(value)
        self.device.log.append(("create", key))
        index = self._next_index
        self._next_index += 1
        return index

    async def update(self, key: str, old: Item, new: Item, metadata: Any) -> Any:
        self.device.check("update", key)
        if key not in self.device.objects:
            raise DeviceError(f"{key} does not exist")
        self.device.objects[key] = DeviceObject(new)
        self.device.log.append(("update", key))
        return metadata

    def update_needs_recreate(self, key: str, old: Item, new: Item) -> bool:
        return old.kind != new.kind

    async def delete(self, key: str, value: Item, metadata: Any) -> None:
        self.device.check("delete", key)
        obj = self.device.objects.get(key)
        if obj is None:
            raise DeviceError(f"{key} does not exist")
        if not obj.owned:
            raise DeviceError(f"{key} is not ours")
        del self.device.objects[key]
        self.device.log.append(("delete", key))
        self.device.remove_riders(key, value)

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        self.device.check("retrieve", self.key_prefix)
        known = {c.key: c.metadata for c in correlate}
        prefix = self.key_prefix
        return [
            RetrievedValue(
                key,
                obj.value,
                known.get(key),
                Origin.FROM_NB if obj.owned else Origin.FROM_SB,
            )
            for key, obj in self.device.objects.items()
            if key.startswith(prefix)
        ]

    def dependencies(self, key: str, value: Item) -> Sequence[Dependency]:
        deps = [Dependency(label="depends-on", key=k, removed_with=k in value.removed_with)
                for k in value.depends_on]
        deps.extend(Dependency(label="depends-on-any", any_of=g) for g in value.depends_on_any)
        return deps

    def derived_values(self, key: str, value: Item) -> Sequence[DerivedValue]:
        return [DerivedValue(k, Item(name=k.rsplit("/", 1)[-1], data=data)) for k, data in value.derived]


ITEM_PREFIX = ItemDescriptor.spec.key_prefix


def item_descriptor_class(name: str, module: str, type_: str) -> type[ItemDescriptor]:
    """A new :class:`ItemDescriptor` subclass with its own name and key prefix."""
    return type(
        f"ItemDescriptor_{type_}",
        (ItemDescriptor,),
        {"name": name, "spec": ModelSpec(module, "v1", type_)},
    )


def item_key(name: str, prefix: str = ITEM_PREFIX) -> str:
    return prefix + name
