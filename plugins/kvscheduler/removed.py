"""Bookkeeping for renderers that produce many values: the keys they no longer produce, kept
until their caller takes them to delete them in its transaction."""

from __future__ import annotations

from collections.abc import Collection, Iterable


class RemovedKeys:
    """Keys a renderer stopped producing since the last :meth:`take`.

    A key that comes back before the caller takes it is not removed (the caller puts it again).
    """

    def __init__(self) -> None:
        self._removed: set[str] = set()

    def gone(self, keys: Iterable[str]) -> None:
        """These keys are no longer produced."""
        self._removed.update(keys)

    def back(self, keys: Iterable[str]) -> None:
        """These keys are produced (again)."""
        self._removed.difference_update(keys)

    def replaced(self, old: Iterable[str], new: Collection[str]) -> None:
        """The keys ``old`` were produced, ``new`` are now."""
        self.gone(key for key in old if key not in new)
        self.back(new)

    def take(self) -> list[str]:
        """The removed keys, sorted; forgotten here (the caller deletes them)."""
        removed, self._removed = sorted(self._removed), set()
        return removed
