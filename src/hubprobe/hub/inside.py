"""The hub's API on a sandbox's own loopback, from inside, where it cannot be done from outside.

The local hub's spawner listens in the container's network namespace from
outside (:func:`hubprobe.hub.forward.tcp_into_namespace`), so that nothing of
hubprobe runs in the container; this forwarder is for a sandbox whose
network namespace it cannot enter.

The single-user server checks every request's token with the hub's API
(``JUPYTERHUB_API_URL``) and reports activity there. The container's
network is its own loopback only, so this listens on 127.0.0.1:PORT inside
and forwards each connection to the Unix socket the spawner serves in the
socket folder; then it runs the server as its child and ends with it.

Run as ``python -m hubprobe.hub.inside SOCKET PORT -- ARGV...``.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from hubprobe.hub.forward import Forward

__all__ = ["main"]


async def _run(socket_path: str, port: int, argv: list[str]) -> int:
    forward = Forward(lambda: asyncio.open_unix_connection(socket_path))
    forward._server = await asyncio.start_server(forward._handle, "127.0.0.1", port)
    child = await asyncio.create_subprocess_exec(*argv)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # As pid 1 we get no default handlers: pass a stop request on to the server.
        loop.add_signal_handler(sig, child.send_signal, sig)
    code = await child.wait()
    await forward.close()
    return code


def main(args: list[str]) -> int:
    socket_path, port, sep, *argv = args
    if sep != "--" or not argv:
        print("usage: python -m hubprobe.hub.inside SOCKET PORT -- ARGV...", file=sys.stderr)
        return 2
    return asyncio.run(_run(socket_path, int(port), argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
