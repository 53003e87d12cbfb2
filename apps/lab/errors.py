"""The lab's one error type (the bottom of the lab's layers: every part may raise it)."""

from __future__ import annotations


class LabError(RuntimeError):
    """A lab operation cannot be done (the message says why)."""
