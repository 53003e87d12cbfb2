"""Quick VPP calls run inline (no thread hop); a slow one sends calls to the worker thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from plugins.vpp import connection as conn_module
from plugins.vpp.connection import VPPConnection


async def test_calls_run_inline_until_one_is_slow(
    connection: VPPConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = connection._call_sync

    def recording(message: str, kwargs: dict[str, Any]) -> Any:
        threads.append(threading.current_thread().name)
        if kwargs.pop("_slow", False):
            time.sleep(conn_module.INLINE_SLOW_S * 2)
        return real(message, kwargs)

    monkeypatch.setattr(connection, "_call_sync", recording)
    await connection.call("show_version")
    assert threads == [threading.current_thread().name]  # the event loop's own thread
    await connection.call("show_version", _slow=True)  # slow: inline calls pause
    await connection.call("show_version")
    assert threads[-1].startswith("vpp-papi")
    assert connection._inline_after > time.monotonic()
    connection._inline_after = 0.0  # the pause is over
    await connection.call("show_version")
    assert threads[-1] == threading.current_thread().name
    assert not connection._client_lock.locked()
