"""The ACL renderer's tests apply its values to the VPP stand-in of the VPP plugin's tests."""

from tests.plugins.vpp.conftest import connection, scheduler, socket_path, stub

__all__ = ["connection", "scheduler", "socket_path", "stub"]
