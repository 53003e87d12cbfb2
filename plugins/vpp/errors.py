"""Errors of the VPP connection, named by kind (retriable call failure, lost connection)."""

from __future__ import annotations

from plugins.kvscheduler.api import TransientError

#: VPP error codes that mean "the request itself is wrong": retrying cannot help.
BAD_REQUEST_CODES = frozenset({-7, -8, -73})


class VPPError(TransientError):
    """Base of VPP dataplane errors (retriable unless said otherwise)."""


class VPPCallError(VPPError):
    """VPP answered a request with a non-zero ``retval``."""

    def __init__(self, message: str, retval: int, args: str = "", *, hint: str = "", fatal: bool = False) -> None:
        detail = f" ({args})" if args else ""
        advice = f": {hint}" if hint else ""
        super().__init__(f"VPP {message} failed with retval {retval}{detail}{advice}")
        self.message = message
        self.retval = retval
        self.fatal = fatal

    @property
    def retriable(self) -> bool:
        return not self.fatal and self.retval not in BAD_REQUEST_CODES


class VPPConnectionError(VPPError):
    """VPP cannot be reached (socket gone, no reply in time, not connected yet)."""


class VPPNotFoundError(VPPError):
    """An object the agent expected in VPP does not exist (e.g. an interface index is unknown)."""
