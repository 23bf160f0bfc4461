"""A small synchronous client for a Jupyter server: REST and kernel websockets.

It talks to the server the way a browser does (REST for kernels and
contents, one websocket per kernel connection, the JSON wire format), so the
server's own restarter and status messages are what gets observed. Used by the
runner from outside the sandbox and by probe notebooks from inside it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import websocket

__all__ = ["ApiError", "KernelSocket", "ServerAPI", "unix_socket"]

JSON = dict[str, Any]


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _message(raw: str) -> str:
    try:
        return str(json.loads(raw).get("message") or raw)
    except (ValueError, AttributeError):
        return raw


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: how the runner reaches a server in a sandbox."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = unix_socket(self._path, self.timeout)


def unix_socket(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


class ServerAPI:
    """REST calls with the server's token; errors carry the server's own message.

    ``socket_path``: the server listens on a Unix socket (a sandboxed server,
    which has no network the host could reach); ``url`` then only names it,
    and its path is the server's base path (``/user/NAME`` behind a hub).
    Without it, ``url`` is a real HTTP(S) address (a hub's ``/user/NAME``).
    """

    def __init__(
        self, url: str, token: str, timeout: float = 30.0, *, socket_path: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.socket_path = socket_path

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: JSON | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        if self.socket_path is not None:
            conn = _UnixConnection(self.socket_path, self.timeout)
            base = urllib.parse.urlsplit(self.url).path
            try:
                conn.request(method, base + path, body=data, headers=self._headers())
                resp = conn.getresponse()
                status, text = resp.status, resp.read().decode(errors="replace")
            finally:
                conn.close()
            if status >= 400:
                raise ApiError(status, _message(text))
            return json.loads(text) if text else None
        req = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers=self._headers()
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, _message(exc.read().decode(errors="replace"))) from None
        return json.loads(text) if text else None

    # -- kernels ----------------------------------------------------------
    def start_kernel(self, name: str = "python3", path: str = "") -> str:
        model = self.request("POST", "/api/kernels", {"name": name, "path": path})
        return str(model["id"])

    def kernel(self, kernel_id: str) -> JSON | None:
        """The kernel's model, or None once the server has forgotten it (404)."""
        try:
            model: JSON = self.request("GET", f"/api/kernels/{kernel_id}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return model

    def kernels(self) -> list[JSON]:
        return list(self.request("GET", "/api/kernels"))

    def delete_kernel(self, kernel_id: str) -> None:
        self.request("DELETE", f"/api/kernels/{kernel_id}")

    def interrupt_kernel(self, kernel_id: str) -> None:
        self.request("POST", f"/api/kernels/{kernel_id}/interrupt")

    def connect(self, kernel_id: str) -> KernelSocket:
        return KernelSocket(self, kernel_id)

    # -- other endpoints --------------------------------------------------
    def status(self) -> JSON:
        return dict(self.request("GET", "/api/status"))

    def metrics(self) -> JSON:
        """jupyter-resource-usage's figures, as the memory indicator shows them."""
        return dict(self.request("GET", "/api/metrics/v1"))

    def save_notebook(self, path: str, nb: JSON) -> JSON:
        """Save through the contents API, as the Save button does."""
        return dict(
            self.request("PUT", f"/api/contents/{path}", {"type": "notebook", "content": nb})
        )


def _quick_acks(sock: socket.socket | None) -> None:
    """Acknowledge at once what the server sends, on a TCP socket (Linux's TCP_QUICKACK).

    The server's kernel websocket leaves Nagle's algorithm on: it holds a
    small frame until the previous one is acknowledged, and the client's
    delayed ACK waits ~40 ms for data to ride on. Every cell paid that stall
    (a round trip of ~47 ms; ~17 ms with this). Linux clears quick-ack mode
    again on its own, so it is set after every send and before every read.
    A no-op elsewhere, and on a Unix socket, where there are no ACKs to delay.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, 1)


class KernelSocket:
    """One websocket to one kernel; open a new one after a restart."""

    def __init__(self, api: ServerAPI, kernel_id: str) -> None:
        self.kernel_id = kernel_id
        self.session = uuid.uuid4().hex
        ws_url = api.url.replace("http", "ws", 1)
        sock = None if api.socket_path is None else unix_socket(api.socket_path, api.timeout)
        self.ws = websocket.create_connection(
            f"{ws_url}/api/kernels/{kernel_id}/channels?session_id={self.session}",
            header=[f"Authorization: token {api.token}"],
            timeout=api.timeout,
            # The server pings idle sockets; websocket-client answers them for us.
            enable_multithread=True,
            socket=sock,
        )

    def send(self, msg_type: str, content: JSON, channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session,
            "username": "hubprobe",
            "date": dt.datetime.now(dt.UTC).isoformat(),
            "version": "5.3",
        }
        msg = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        self.ws.send(json.dumps({**msg, "channel": channel}))
        _quick_acks(self.ws.sock)
        return msg_id

    def recv(self, timeout: float) -> JSON | None:
        """The next message, or None if nothing came within ``timeout`` seconds."""
        self.ws.settimeout(max(timeout, 0.001))
        _quick_acks(self.ws.sock)
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        if not raw:
            return None
        msg: JSON = json.loads(raw)
        return msg

    def execute_request(self, code: str, *, silent: bool = False) -> str:
        """Send code to run; ``silent``: as a frontend's own bookkeeping, not the user's cell
        (no execution count, no history, nothing in ``Out``)."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": not silent,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        return self.send("execute_request", content)

    def kernel_info(self, timeout: float) -> JSON | None:
        """kernel_info_reply content, or None if the kernel did not answer in time."""
        msg_id = self.send("kernel_info_request", {})
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is None:
                return None
            if (
                msg.get("parent_header", {}).get("msg_id") == msg_id
                and msg.get("msg_type") == "kernel_info_reply"
            ):
                reply: JSON = msg["content"]
                return reply
        return None

    def execute(self, code: str, timeout: float = 60.0, *, silent: bool = False) -> list[JSON]:
        """Run code and return its iopub outputs; for probes' own helper kernels."""
        msg_id = self.execute_request(code, silent=silent)
        outputs: list[JSON] = []
        deadline = time.monotonic() + timeout
        idle = replied = False
        while not (idle and replied):
            msg = self.recv(deadline - time.monotonic())
            if msg is None:
                raise TimeoutError(f"no reply from kernel {self.kernel_id} in {timeout} s")
            if msg.get("msg_type") == "status" and msg["content"]["execution_state"] in (
                "restarting",
                "dead",
            ):
                raise RuntimeError(f"kernel {msg['content']['execution_state']} while executing")
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg.get("msg_type")
            if kind == "execute_reply":
                replied = True
            elif kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
            elif kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append({"output_type": kind, **msg["content"]})
        return outputs

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
