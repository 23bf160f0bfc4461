"""``hubprobe hub``: a real JupyterHub on 127.0.0.1 whose servers run in hubprobe's container.

Dummy authentication, the configurable-http-proxy from npm, and
:class:`~hubprobe.hub.spawner.ContainerSpawner` with one profile's limits.
Its state (database, cookie secret, logs, config) lives in a private folder
removed when it stops. The admin token is made here, handed to the hub
through its environment (never a command line) and written to a file only
its owner can read.

Stopping (Ctrl-C, :meth:`LocalHub.stop`): SIGTERM to the hub, which stops
every server (each spawner closes its sandbox) and the proxy it started;
if the hub does not end in time it is killed, and what it started is
ended by pid (the proxy) or by the sandboxes' watchdogs (the containers).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from hubprobe import interrupts
from hubprobe.errors import ExitCode, HubprobeError
from hubprobe.files import write_atomic
from hubprobe.hub.api import HubClient, HubError
from hubprobe.profiles import Profile

__all__ = ["PROXY", "HubStartError", "LocalHub", "find_proxy", "free_port"]

PROXY = "configurable-http-proxy"
#: The environment variable that carries the admin token into the hub's config.
_TOKEN_ENV = "HUBPROBE_HUB_ADMIN_TOKEN"
SERVICE = "hubprobe"
#: What the admin token may do: manage users and their servers, and use them.
SCOPES = ["admin:users", "admin:servers", "access:servers", "read:metrics"]

_CONFIG = """\
# Written by hubprobe hub; the admin token comes from the environment, never from here.
import os
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {proxy_pid!r}
c.JupyterHub.db_url = "sqlite:///" + {db!r}
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.spawner_class = "hubprobe.hub.spawner.ContainerSpawner"
c.ContainerSpawner.profile = {profile!r}
c.ContainerSpawner.backend = {backend!r}
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.services = [
    {{"name": {service!r}, "api_token": os.environ.pop({token_env!r})}},
]
c.JupyterHub.load_roles = [
    {{"name": {service!r}, "scopes": {scopes!r}, "services": [{service!r}]}},
]
"""


class HubStartError(HubprobeError):
    """The local hub could not be started."""

    exit_code = ExitCode.HUB_UNREACHABLE


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the hub binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_proxy() -> str:
    """The proxy's command, or the one line that says how to install it."""
    proxy = shutil.which(PROXY)
    if proxy is None:
        raise HubStartError(
            f"{PROXY} is not installed",
            f"install it with npm: npm install -g {PROXY} (nox -s tests does this as root)",
        )
    return proxy


class LocalHub:
    """Start with :meth:`start`, end with :meth:`stop` (or use as a context manager)."""

    def __init__(
        self,
        profile: Profile,
        *,
        port: int = 0,
        users: tuple[str, ...] = ("student",),
        token_file: Path | None = None,
        backend: str = "",
    ) -> None:
        self.profile = profile
        self.port = port or free_port()
        self.users = users
        self.backend = backend
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(32)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"hubprobe-{os.getpid()}-hub-"))  # 0700
        self.token_file = token_file or self.workdir / "admin-token"
        self.log_path = self.workdir / "jupyterhub.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._wrote_token = False

    def _config(self) -> Path:
        proxy = find_proxy()
        text = _CONFIG.format(
            port=self.port, hub_port=free_port(), proxy_api_port=free_port(), proxy=proxy,
            proxy_pid=str(self.workdir / "proxy.pid"), db=str(self.workdir / "jupyterhub.sqlite"),
            cookie=str(self.workdir / "cookie_secret"), users=set(self.users),
            profile=str(self.profile.path), backend=self.backend, service=SERVICE,
            token_env=_TOKEN_ENV, scopes=SCOPES,
        )  # fmt: skip
        path = self.workdir / "jupyterhub_config.py"
        path.write_text(text)
        return path

    def start(self, timeout: float = 60.0) -> None:
        config = self._config()
        write_atomic(self.token_file, self.token + "\n")
        self.token_file.chmod(0o600)
        self._wrote_token = True
        env = {**os.environ, _TOKEN_ENV: self.token}
        env.pop("JUPYTERHUB_API_TOKEN", None)  # the caller's own token stays with the caller
        with self.log_path.open("wb") as log:
            # A session of its own: a Ctrl-C reaches hubprobe, which stops the hub in order.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        client = HubClient(self.url, self.token, timeout=5)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise HubStartError(f"jupyterhub exited at start: {self.log_tail()}")
            try:
                client.info()
                return
            except HubError:
                if time.monotonic() > deadline:
                    raise HubStartError(
                        f"jupyterhub did not answer at {self.url} in {timeout:.0f} s:"
                        f" {self.log_tail()}"
                    ) from None
                time.sleep(0.2)

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def stop(self, timeout: float = 60.0) -> None:
        with interrupts.shielded():
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc is not None:
                self._end_proxy()
            if self._wrote_token:
                with contextlib.suppress(FileNotFoundError):
                    self.token_file.unlink()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _end_proxy(self) -> None:
        """The proxy the hub started, if the hub could not stop it (it was killed)."""
        pid_file = self.workdir / "proxy.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if PROXY.encode() in cmdline or b"node" in cmdline:
                os.kill(pid, signal.SIGTERM)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
