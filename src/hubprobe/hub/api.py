"""A small client for a JupyterHub's REST API: who am I, start a user's server, reach it.

The token is read from a file or ``JUPYTERHUB_API_TOKEN`` (:func:`read_token`),
never from a command line, and travels only in the Authorization header:
it is never put in a URL, a message or a log line. Every failure is one of
the :class:`HubError` kinds, each with its own exit code.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hubprobe.errors import ExitCode, HubprobeError, UsageError
from hubprobe.jupyter.api import ServerAPI

__all__ = [
    "TOKEN_ENV",
    "HubAuthError",
    "HubClient",
    "HubError",
    "HubUnreachable",
    "NoServer",
    "check_url",
    "read_token",
]

TOKEN_ENV = "JUPYTERHUB_API_TOKEN"


class HubError(HubprobeError):
    exit_code = ExitCode.HUB_UNREACHABLE


class HubUnreachable(HubError):
    exit_code = ExitCode.HUB_UNREACHABLE


class HubAuthError(HubError):
    exit_code = ExitCode.HUB_AUTH


class NoServer(HubError):
    exit_code = ExitCode.HUB_NO_SERVER


def check_url(url: str) -> str:
    """The hub's base URL without a trailing slash; a usage error if it is not an http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--hub {url}: not a hub URL",
            "give the hub's address, e.g. https://datahub.berkeley.edu",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"--hub {url}: has a query or fragment", "give the hub's base address")
    return url.rstrip("/").removesuffix("/hub")


def read_token(token_file: str | None) -> str:
    """The API token: from ``token_file``, else from JUPYTERHUB_API_TOKEN; never from argv."""
    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise UsageError(
                f"--token-file {token_file}: cannot read it ({exc.strerror or exc})",
                "give the file that holds the hub API token",
            ) from None
        if not token:
            raise UsageError(f"--token-file {token_file}: is empty", "put the API token in it")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(
            "no hub API token",
            f"give --token-file FILE or set {TOKEN_ENV} (from the hub's Token page)",
        )
    return token


class HubClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = check_url(url)
        self.token = token
        self.timeout = timeout

    def _open(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/hub/api{path}", data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Accept": "application/json",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            exc.close()
            try:
                message = str(json.loads(text).get("message") or exc.reason)
            except (ValueError, AttributeError):
                message = str(exc.reason)
            if exc.code in (401, 403):
                raise HubAuthError(
                    f"the hub at {self.url} refused the token (HTTP {exc.code}: {message})",
                    "check the token file, or make a new token with the scopes the how-to lists",
                ) from None
            if exc.code == 404 and path.startswith("/users/"):
                raise NoServer(
                    f"no user {path.split('/')[2]!r} on the hub at {self.url}",
                    "give --user NAME of a user who can log in there",
                ) from None
            raise HubUnreachable(
                f"the hub at {self.url} answered HTTP {exc.code} to {method} {path}: {message}"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            why = getattr(exc, "reason", exc)
            raise HubUnreachable(
                f"cannot reach a JupyterHub at {self.url} ({why})",
                "check the URL and that the hub is up",
            ) from None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(method, path, body) as resp:
            text = resp.read().decode(errors="replace")
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise HubUnreachable(
                f"{self.url} answered {path} with something that is not JupyterHub's API",
                "give the hub's base address (the page before /hub/login)",
            ) from None

    # -- the hub ---------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """``GET /hub/api``: the version; also tells that a hub answers at all."""
        data = self.request("GET", "")
        if not isinstance(data, dict) or "version" not in data:
            raise HubUnreachable(f"{self.url} does not answer like a JupyterHub")
        return data

    def whoami(self) -> dict[str, Any]:
        return dict(self.request("GET", "/user"))

    def user(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/users/{urllib.parse.quote(name)}"))

    def default_user(self) -> str:
        """The token's own user (a service's token must say --user)."""
        me = self.whoami()
        if me.get("kind", "user") != "user":
            raise UsageError(
                f"the token belongs to the {me.get('kind')} {me.get('name')!r}, not a user",
                "say whose server to use with --user NAME",
            )
        return str(me["name"])

    # -- a user's server -------------------------------------------------------
    def server_ready(self, name: str) -> bool:
        server = (self.user(name).get("servers") or {}).get("")
        return bool(server and server.get("ready"))

    def ensure_server(self, name: str, timeout: float = 300.0) -> tuple[ServerAPI, bool]:
        """The user's running server (started if needed, waiting on its progress).

        Returns (its API, whether this call started it).
        """
        quoted = urllib.parse.quote(name)
        if self.server_ready(name):
            return self.server_api(name), False
        try:
            self.request("POST", f"/users/{quoted}/server")
        except HubUnreachable as exc:
            if "HTTP 400" not in str(exc):  # 400: already pending, which the stream shows
                raise NoServer(f"the hub would not start {name}'s server: {exc.reason}") from None
        self._wait_progress(quoted, name, timeout)
        return self.server_api(name), True

    def _wait_progress(self, quoted: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no progress reported"
        with self._open("GET", f"/users/{quoted}/server/progress", timeout=timeout) as stream:
            for raw in stream:
                line = raw.decode(errors="replace").strip()
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                last = str(event.get("message") or last)
                if event.get("ready"):
                    return
                if event.get("failed"):
                    raise NoServer(f"{name}'s server would not start: {last}")
                if time.monotonic() > deadline:
                    break
        if not self.server_ready(name):
            raise NoServer(f"{name}'s server did not start in {timeout:.0f} s: {last}")

    def stop_server(self, name: str, timeout: float = 120.0) -> None:
        self.request("DELETE", f"/users/{urllib.parse.quote(name)}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = (self.user(name).get("servers") or {}).get("")
            if not server:
                return
            time.sleep(0.5)
        raise NoServer(f"{name}'s server did not stop in {timeout:.0f} s")

    def server_api(self, name: str) -> ServerAPI:
        """The user's Jupyter server, through the hub's proxy (``/user/NAME/api/...``)."""
        return ServerAPI(f"{self.url}/user/{urllib.parse.quote(name)}", self.token)
