"""Byte pipes between a TCP port on 127.0.0.1 and a Unix socket, on an asyncio loop.

A sandboxed single-user server has no network the host can reach, and
cannot reach the host's: its one door is a Unix socket folder. JupyterHub's
proxy and the hub need TCP, so the spawner forwards a loopback port to the
server's socket; inside, the server needs the hub's API at a TCP address,
so a port on the container's own loopback is forwarded to a socket the
spawner serves. Only 127.0.0.1 is ever bound: traffic stays on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["Forward", "tcp_into_namespace", "tcp_to_unix", "unix_to_tcp"]

_CLONE_NEWNET = 0x40000000

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Forward:
    """One listening end; every connection is piped to a fresh connection made by ``open``."""

    def __init__(self, open_upstream: Opener) -> None:
        self._open = open_upstream
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._open()
        except OSError:
            writer.close()  # the server is not listening yet: the client retries
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None


async def tcp_to_unix(path: str, port: int = 0) -> tuple[Forward, int]:
    """Listen on 127.0.0.1:``port`` (0: any free one), forward to the Unix socket ``path``."""
    forward = Forward(lambda: asyncio.open_unix_connection(path))
    forward._server = await asyncio.start_server(forward._handle, "127.0.0.1", port)
    bound: int = forward._server.sockets[0].getsockname()[1]
    return forward, bound


async def unix_to_tcp(path: str, port: int, *, owner: tuple[int, int] | None = None) -> Forward:
    """Listen on the Unix socket ``path``, forward to 127.0.0.1:``port``.

    ``owner``: who may connect (the container's uid); nobody else can, the
    socket is 0600.
    """
    forward = Forward(lambda: asyncio.open_connection("127.0.0.1", port))
    forward._server = await asyncio.start_unix_server(forward._handle, path)
    Path(path).chmod(0o600)
    if owner is not None:
        os.chown(path, *owner)
    return forward


def _listen_in(netns: Path, port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port`` of the network namespace ``netns``.

    A socket stays in the namespace it was made in, so a thread of its own
    enters the namespace (setns changes only the calling thread's), makes the
    socket and ends; nothing of the caller moves.
    """
    made: list[socket.socket | OSError] = []

    def enter_and_listen() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with netns.open("rb") as ns:
                if libc.setns(ns.fileno(), _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            sock.setblocking(False)
            made.append(sock)
        except OSError as exc:  # handed to the caller's thread
            made.append(exc)

    thread = threading.Thread(target=enter_and_listen, name="hubprobe-netns")
    thread.start()
    thread.join()
    if not made:
        raise OSError(f"could not listen in {netns}")
    if isinstance(made[0], OSError):
        raise made[0]
    return made[0]


async def tcp_into_namespace(netns: Path, port: int, upstream_port: int) -> Forward:
    """Listen on 127.0.0.1:``port`` inside the network namespace ``netns`` (a container's),
    forward to 127.0.0.1:``upstream_port`` here.

    The forwarding runs in this process, outside the container: the container
    holds only what a hub's pod would (the server and its kernels), and none of
    its memory or CPU goes to hubprobe's plumbing.
    """
    sock = await asyncio.to_thread(_listen_in, netns, port)
    forward = Forward(lambda: asyncio.open_connection("127.0.0.1", upstream_port))
    forward._server = await asyncio.start_server(forward._handle, sock=sock)
    return forward
