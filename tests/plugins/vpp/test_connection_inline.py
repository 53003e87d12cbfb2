"""Quick VPP calls run inline (no thread hop); slow ones send calls to the worker thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from plugins.vpp import connection as conn_module
from plugins.vpp.connection import VPPConnection


async def test_calls_run_inline_until_two_are_slow_or_one_hangs(
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
    await connection.call("show_version", _slow=True)  # one slow answer (a one-off cost): still inline
    await connection.call("show_version")
    assert threads[-1] == threading.current_thread().name
    await connection.call("show_version", _slow=True)  # a second one soon after: inline calls pause
    await connection.call("show_version")
    assert threads[-1].startswith("vpp-papi")
    assert connection._inline_after > time.monotonic()
    connection._inline_after = 0.0  # the pause is over
    connection._last_slow = -conn_module.INLINE_PAUSE_S
    await connection.call("show_version")
    assert threads[-1] == threading.current_thread().name
    monkeypatch.setattr(conn_module, "INLINE_HANG_S", conn_module.INLINE_SLOW_S * 1.5)
    await connection.call("show_version", _slow=True)  # hanging (here: over the hang bound): pause at once
    await connection.call("show_version")
    assert threads[-1].startswith("vpp-papi")
    assert not connection._client_lock.locked()
