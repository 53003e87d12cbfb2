"""The KV scheduler's public contract: value keys, descriptors, dependencies, states, transactions.

Everything the agent configures in a dataplane is a *value*: a typed model stored under a key.
A :class:`Descriptor` teaches the scheduler one value type (CRUD, read-back, dependencies,
derived values). Plugins hand the scheduler *desired* state in transactions; the scheduler
orders the operations so that no value exists before its dependencies, keeps values whose
dependencies are missing PENDING, and records what it did.

Keys look like ``config/<module>/<version>/<type>/<name>`` (see :class:`ModelSpec`); derived
values may use any key that starts with a registered descriptor's prefix, or no descriptor at all
(then they are mere *properties*: they exist as soon as their base does, in state UNIMPLEMENTED,
and other values can depend on them).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel

V = TypeVar("V", bound=BaseModel)


# --------------------------------------------------------------------------------------------
# Errors


class SchedulerError(Exception):
    """Base of the scheduler's own errors."""


class InvalidValueError(SchedulerError):
    """``validate`` rejected a value: it stays INVALID until the desired value changes."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid value {key}: {reason}")
        self.key = key
        self.reason = reason


class TransientError(SchedulerError):
    """A dataplane error worth retrying (default :meth:`Descriptor.is_retriable` says yes)."""


class KeyMismatchError(SchedulerError):
    """A value was put under a key that is not the key of its own name."""


# --------------------------------------------------------------------------------------------
# Keys and models


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Identity of a value type: ``config/<module>/<version>/<type>/``."""

    module: str
    version: str
    type: str

    @property
    def key_prefix(self) -> str:
        return f"config/{self.module}/{self.version}/{self.type}/"


# --------------------------------------------------------------------------------------------
# Dependencies and derived values


@dataclass(frozen=True, slots=True)
class Dependency:
    """One condition a value needs before it can be created.

    Exactly one of ``key`` (that exact key must exist) or ``any_of`` (at least one existing key
    starts with one of these prefixes) is set. ``label`` names the dependency in status output,
    so an operator sees *what* a pending value waits for.
    """

    label: str
    key: str | None = None
    any_of: tuple[str, ...] = ()
    #: True when the dataplane removes this value by itself together with the value behind
    #: ``key`` (an address, route or neighbour on a link goes with the link). When that value
    #: (or, for a property without descriptor, the value it is derived from) is deleted in the
    #: same transaction, the scheduler records this one deleted without calling its
    #: ``delete``; deleted alone, it is deleted as usual. Only with ``key``.
    removed_with: bool = False

    def __post_init__(self) -> None:
        if (self.key is None) == (not self.any_of):
            raise ValueError(f"dependency {self.label!r}: set exactly one of key or any_of")
        if self.removed_with and self.key is None:
            raise ValueError(f"dependency {self.label!r}: removed_with needs a key, not any_of")


@dataclass(frozen=True, slots=True)
class DerivedValue:
    """A value that lives and dies with its base value (e.g. an interface's address)."""

    key: str
    value: BaseModel


# --------------------------------------------------------------------------------------------
# Read-back


class Origin(enum.Enum):
    #: Created by us (carries our ownership mark): the scheduler may update or delete it.
    FROM_NB = "from-nb"
    #: Exists in the dataplane but is not ours: never touched, may satisfy dependencies.
    FROM_SB = "from-sb"


@dataclass(slots=True)
class RetrievedValue:
    key: str
    value: BaseModel
    metadata: Any = None
    origin: Origin = Origin.FROM_NB


@dataclass(slots=True)
class ValueWithMetadata:
    """A value the scheduler believes applied, given to ``retrieve`` for correlation."""

    key: str
    value: BaseModel
    metadata: Any


# --------------------------------------------------------------------------------------------
# Descriptor contract


class Descriptor(ABC, Generic[V]):
    """How the scheduler manages one value type. Methods that touch the dataplane are async.

    Required: ``name``, ``spec``, ``model``, :meth:`value_name`, :meth:`create`,
    :meth:`delete`, :meth:`retrieve`. The rest have safe defaults.
    """

    #: Unique descriptor name, e.g. ``linux-route``.
    name: ClassVar[str]
    #: The value type's identity; its key prefix selects the keys this descriptor owns.
    spec: ClassVar[ModelSpec]
    #: The value's model class (pydantic).
    model: ClassVar[type[BaseModel]]
    #: True when ``create`` returns metadata worth indexing (see :meth:`KVSchedulerAPI.metadata`).
    with_metadata: ClassVar[bool] = False
    #: Descriptors whose ``retrieve`` must run before this one's (e.g. routes need interfaces'
    #: metadata to map indexes to names).
    retrieve_after: ClassVar[tuple[str, ...]] = ()

    @property
    def key_prefix(self) -> str:
        return self.spec.key_prefix

    @abstractmethod
    def value_name(self, value: V) -> str:
        """The value's name, derived from its content; its key is ``key_prefix + name``."""

    def key_of(self, value: V) -> str:
        return self.key_prefix + self.value_name(value)

    def validate(self, key: str, value: V) -> None:
        """Raise :class:`InvalidValueError` naming what is wrong; never touches the dataplane."""

    @abstractmethod
    async def create(self, key: str, value: V) -> Any:
        """Create the value in the dataplane; return its metadata (or None)."""

    async def update(self, key: str, old: V, new: V, metadata: Any) -> Any:
        """Change an existing value in place; return the new metadata.

        Only called when :meth:`update_needs_recreate` is False. The default re-creates.
        """
        await self.delete(key, old, metadata)
        return await self.create(key, new)

    def update_needs_recreate(self, key: str, old: V, new: V) -> bool:
        """True when the change cannot be applied in place (delete + create instead)."""
        return False

    def equivalent(self, key: str, old: V, new: V) -> bool:
        """True when two values are the same to the dataplane (no update needed)."""
        return old == new

    @abstractmethod
    async def delete(self, key: str, value: V, metadata: Any) -> None:
        """Remove the value from the dataplane."""

    @abstractmethod
    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        """Read back what exists of this type.

        Objects carrying our ownership mark come back as ``Origin.FROM_NB``; foreign ones either
        not at all or as ``Origin.FROM_SB`` (they can satisfy dependencies but are never
        changed). ``correlate`` holds what the scheduler thinks is applied, to help matching
        (e.g. to recover values whose dataplane form loses information).
        """

    def dependencies(self, key: str, value: V) -> Sequence[Dependency]:
        """What must exist before this value can be created."""
        return ()

    def derived_values(self, key: str, value: V) -> Sequence[DerivedValue]:
        """Values that live and die with this one (created after it, deleted before it)."""
        return ()

    def is_retriable(self, error: Exception) -> bool:
        """Whether a failed operation is worth retrying with back-off."""
        return isinstance(error, (TransientError, OSError, TimeoutError))


# --------------------------------------------------------------------------------------------
# States and results


class ValueState(enum.Enum):
    NONEXISTENT = "nonexistent"  # not desired, not applied
    MISSING = "missing"  # desired and believed applied, but read-back did not find it
    UNIMPLEMENTED = "unimplemented"  # a property value with no descriptor
    REMOVED = "removed"  # deleted by the last transaction
    CONFIGURED = "configured"  # applied as desired
    OBTAINED = "obtained"  # found in the dataplane, not ours: left alone
    DISCOVERED = "discovered"  # ours, found by read-back, not (yet) desired
    PENDING = "pending"  # desired, waiting for dependencies
    INVALID = "invalid"  # rejected by validate
    FAILED = "failed"  # the last operation failed, no retry left
    RETRYING = "retrying"  # the last operation failed, a retry is scheduled


class Operation(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RECREATE = "recreate"


@dataclass(slots=True)
class MissingDependency:
    label: str
    key: str | None = None
    any_of: tuple[str, ...] = ()


@dataclass(slots=True)
class ValueStatus:
    """What the scheduler knows about one key right now."""

    key: str
    state: ValueState
    descriptor: str | None = None
    error: str | None = None
    last_operation: Operation | None = None
    #: For PENDING values: exactly which dependencies are unmet.
    waiting_for: list[MissingDependency] = field(default_factory=list)
    #: For derived values: the key of the base value.
    derived_from: str | None = None
    #: Sequence number of the transaction that last changed this status.
    txn_seq: int = 0


class ResyncMode(enum.Enum):
    #: Desired state replaced; dataplane read back; every difference fixed.
    FULL = "full"
    #: Desired state replaced; the dataplane is assumed to be as last applied (no read-back).
    UPSTREAM = "upstream"
    #: Desired state kept; dataplane read back and the last desired state re-applied.
    DOWNSTREAM = "downstream"


class TxnKind(enum.Enum):
    NB = "nb"  # northbound changes from the controller
    RETRY = "retry"  # retry of failed values
    RESYNC = "resync"


@dataclass(slots=True)
class OperationRecord:
    """One executed (or failed) operation inside a transaction."""

    key: str
    operation: Operation
    before: BaseModel | None
    after: BaseModel | None
    error: str | None = None
    duration_s: float = 0.0
    is_retry: bool = False
    #: True for operations that undo a failed revert-on-failure transaction.
    is_revert: bool = False
    #: True for a delete the dataplane did by itself: the value went with the value it depends
    #: on (see :attr:`Dependency.removed_with`); its descriptor's ``delete`` was not called.
    implicit: bool = False


@dataclass(slots=True)
class TxnResult:
    seq: int
    kind: TxnKind
    resync: ResyncMode | None
    description: str
    #: Final status of every key the transaction touched.
    values: dict[str, ValueStatus] = field(default_factory=dict)
    operations: list[OperationRecord] = field(default_factory=list)
    #: Errors by key (operations that failed, invalid values).
    errors: dict[str, str] = field(default_factory=dict)
    reverted: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


class KVSchedulerAPI(Protocol):
    """What other plugins use of the scheduler."""

    def register_descriptor(self, descriptor: Descriptor[Any]) -> None:
        """Add a value type; call from ``init``. Names and key prefixes must be unique."""
        ...

    def descriptors(self) -> list[Descriptor[Any]]:
        """The registered descriptors (e.g. to find the model of a key's value type)."""
        ...

    async def commit(
        self,
        changes: Mapping[str, BaseModel | None],
        *,
        resync: ResyncMode | None = None,
        revert_on_failure: bool = False,
        description: str = "",
    ) -> TxnResult:
        """Run one transaction and wait for it.

        Without ``resync``: ``changes`` maps keys to new desired values (None deletes).
        With FULL or UPSTREAM: ``changes`` is the complete desired state. With DOWNSTREAM:
        ``changes`` is ignored (pass ``{}``). With ``revert_on_failure`` a failed operation
        undoes everything the transaction already did.
        """
        ...

    def value_status(self, key: str) -> ValueStatus:
        """The current status of a key (NONEXISTENT when unknown)."""
        ...

    def desired(self) -> Mapping[str, BaseModel]:
        """The current desired state (NB values, derived values excluded)."""
        ...

    def metadata(self, descriptor: str) -> Mapping[str, Any]:
        """Metadata of every applied value of ``descriptor``, keyed by value name."""
        ...
