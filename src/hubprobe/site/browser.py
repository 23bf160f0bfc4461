"""Headless Debian Chromium through Playwright, and a static server for site/.

Playwright's own browser download is never used (it cannot work offline):
Chromium comes from Debian's package at /usr/bin/chromium. The flags keep it
from reaching for Google's hosts, which this kind of machine refuses.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import selectors
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "chromium", "forward_unix", "serve_dir"]

CHROMIUM = os.environ.get("HUBPROBE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",  # as root; the page is our own site
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str | None:
    """Why a browser cannot run here, or None."""
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM}: apt-get install -y chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: pip install 'hubprobe[browser]'"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless browser (Playwright Browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_dir(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def forward_unix(socket_path: str) -> Iterator[str]:
    """A port on 127.0.0.1 whose connections go to a Unix socket; yields its base URL.

    A sandboxed Jupyter server listens only on a Unix socket; a browser needs
    TCP. Bytes are copied both ways (HTTP and websockets alike), one thread a
    connection, for as long as the block runs.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pump(client: socket.socket) -> None:
        with client, socket.socket(socket.AF_UNIX) as upstream:
            upstream.connect(socket_path)
            sel = selectors.DefaultSelector()
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            while not stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)

    def accept() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=pump, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()
