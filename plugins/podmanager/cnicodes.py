"""Error codes of the CNI specification, and the pod manager's own (100 and up).

Shared by the agent's CNI server and the ``contiv-cni`` binary; imports nothing heavy so the
binary can use it without slowing its start.
"""

from __future__ import annotations


class CNICode:
    """Error codes a CNI plugin reports (spec section "Error"; 1-99 are the specification's).

    Plain ``int`` constants, not an ``IntEnum``: :mod:`enum` costs the binary's start ~5 ms.
    """

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODE_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    TRY_AGAIN_LATER = 11
    #: The agent could not wire the pod (an event handler or the dataplane failed).
    ADD_FAILED = 100
    #: CHECK found the pod's network different from its result.
    CHECK_FAILED = 101
    #: The agent could not unwire the pod.
    DELETE_FAILED = 102
    #: An unexpected failure inside the plugin.
    INTERNAL = 999


class CNIError(Exception):
    """A failure reported as a CNI error: a code, a message and optional details."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return f"[{self.code}] {self.msg}" + (f" ({self.details})" if self.details else "")
