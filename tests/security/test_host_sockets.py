"""The node-local sockets: the CNI server's and contiv-stn's are owner-only from their creation,
and starting them never changes the process-wide umask (files that other tasks or threads create
meanwhile keep their modes)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Any

import grpc
import pytest

from core.unixsocket import bind_owner_only
from plugins.podmanager.server import RemoteCNIServer
from plugins.stn.config import STNConfig
from plugins.stn.server import STNServer
from plugins.stn.service import STNService

LOG = logging.getLogger("test")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_bind_owner_only_leaves_an_owner_only_socket_and_nothing_else(tmp_path: Path) -> None:
    seen: list[int] = []

    def bind(address: str) -> None:  # what grpc does: bind at once, with the process's umask
        seen.append(mode(Path(address).parent))
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(address)
        sock.close()

    target = tmp_path / "x.sock"
    bind_owner_only(target, bind)
    assert seen == [0o700]  # made where no other user reaches it
    assert stat.S_ISSOCK(target.lstat().st_mode) and mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sock"]


class _NoCalls:
    """A CNI handler for a server that gets no call here."""

    async def add(self, request: Any) -> Any:
        raise AssertionError("no CNI call expected")

    delete = check = add


class _UmaskWatch:
    """Counts os.umask calls that change the mask."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.changes = 0
        real = os.umask

        def umask(value: int) -> int:
            old = real(value)
            if old != value:
                self.changes += 1
            return old

        monkeypatch.setattr(os, "umask", umask)


async def _start_stop(server: Any, socket_path: Path, other_dir: Path) -> int:
    """Start the server while another task creates files; the mode those files got."""
    created = asyncio.Event()

    async def other_task() -> int:
        await asyncio.sleep(0)  # runs at the server's first suspension
        path = other_dir / "written-meanwhile"
        path.write_text("x")
        created.set()
        return mode(path)

    task = asyncio.create_task(other_task())
    await server.start()
    await created.wait()
    try:
        assert mode(socket_path) == 0o600 and stat.S_ISSOCK(socket_path.lstat().st_mode)
        async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)  # the renamed socket serves
    finally:
        await server.stop(0)
    return await task


@pytest.mark.parametrize("kind", ["cni", "stn"])
async def test_servers_make_owner_only_sockets_without_a_umask(kind: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    expected = 0o666 & ~_current_umask()  # what a file written meanwhile must get
    watch = _UmaskWatch(monkeypatch)
    sock = tmp_path / "run" / f"{kind}.sock"
    server: Any
    if kind == "cni":
        server = RemoteCNIServer(str(sock), handler=_NoCalls(), log=LOG)
    else:
        service = STNService(STNConfig(socket_path=str(sock), state_file=str(tmp_path / "stn.json")), LOG)
        server = STNServer(str(sock), service, LOG)
    other = tmp_path / "other"
    other.mkdir()
    got = await _start_stop(server, sock, other)
    assert watch.changes == 0  # the process-wide umask was never changed
    assert got == expected
    assert mode(sock.parent) == 0o700  # the directory it created


def _current_umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old
