"""VPP's own ``retval`` codes (vnet/api_errno.h) used by the stand-in."""

from __future__ import annotations

INVALID_SW_IF_INDEX = -2
UNSUPPORTED = -30
NO_SUCH_FIB = -3
NO_SUCH_ENTRY = -6
INVALID_VALUE = -7
INVALID_VALUE_2 = -8
INVALID_SW_IF_INDEX_2 = -10
SYSCALL_ERROR_1 = -11
SYSCALL_ERROR_2 = -12
SUBIF_ALREADY_EXISTS = -68
TUNNEL_EXIST = -75
SAME_SRC_DST = -82
DUPLICATE_IF_ADDRESS = -127
ADDRESS_NOT_FOUND_FOR_INTERFACE = -60
INVALID_INTERFACE = -71
INVALID_ARGUMENT = -73
IF_ALREADY_EXISTS = -79
VALUE_EXIST = -81
ADDRESS_FOUND_FOR_INTERFACE = -114
BD_ALREADY_EXISTS = -119
BD_IN_USE = -120
BD_NOT_MODIFIABLE = -121
INSTANCE_IN_USE = -147
BD_ALREADY_HAS_BVI = -152


class ApiError(Exception):
    """A request VPP would refuse: the reply carries ``retval``."""

    def __init__(self, retval: int, why: str) -> None:
        super().__init__(f"retval {retval}: {why}")
        self.retval = retval
