"""A real jupyter_server inside a sandbox, reachable on loopback.

Started as JupyterHub's single-user server would be: MEM_LIMIT and CPU_LIMIT
in its environment (the sandbox sets them from the profile), the private
home as root and working directory, jupyter-resource-usage loaded from its
installed config. Kernels inherit the server's environment, which also
carries the server's URL and token so that probes can use the REST API.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from hubprobe.jupyter.api import ApiError, ServerAPI
from hubprobe.sandbox import Sandbox, SandboxError

__all__ = ["TOKEN_ENV", "URL_ENV", "JupyterServer"]

URL_ENV = "HUBPROBE_SERVER_URL"
TOKEN_ENV = "HUBPROBE_SERVER_TOKEN"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterServer:
    """Start with :meth:`start`; it lives as long as its sandbox."""

    def __init__(
        self,
        sandbox: Sandbox,
        log_path: Path,
        *,
        python: str = sys.executable,
        env: Mapping[str, str | None] | None = None,
        seed: Path | None = None,
    ) -> None:
        self.sandbox = sandbox
        #: A folder whose contents are copied into the private home before the
        #: server starts (the home exists only inside the sandbox's namespace).
        self.seed = seed
        self.log_path = log_path
        self.python = python
        self.extra_env = dict(env or {})
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = ServerAPI(self.url, self.token)
        self.version = ""

    def start(self, timeout: float = 60.0) -> ServerAPI:
        argv = [
            self.python, "-m", "jupyter_server",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", "--ServerApp.open_browser=False",
            f"--IdentityProvider.token={self.token}",
            # hubprobe runs as root (cgroups, mounts); a hub runs as jovyan.
            "--allow-root",
        ]  # fmt: skip
        home = self.sandbox.home
        env: dict[str, str | None] = {
            URL_ENV: self.url,
            TOKEN_ENV: self.token,
            # Config and runtime files in the private home, as on a hub's volume.
            "JUPYTER_CONFIG_DIR": f"{home}/.jupyter",
            "JUPYTER_RUNTIME_DIR": f"{home}/.local/share/jupyter/runtime",
            "IPYTHONDIR": f"{home}/.ipython",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        if self.seed is not None:
            # `exec` keeps the pid: the server stays the sandbox's one process tree.
            copy = 'cp -a "$1"/. "$HOME"/ && shift && exec "$@"'
            argv = ["/bin/sh", "-c", copy, "seed", str(self.seed), *argv]
        log = self.log_path.open("wb")
        proc = self.sandbox.spawn(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SandboxError(f"jupyter_server exited at start: {self.log_tail()}")
            try:
                self.version = str(self.api.request("GET", "/api/").get("version", ""))
                return self.api
            except (OSError, ApiError):
                time.sleep(0.05)
        raise SandboxError(f"jupyter_server did not answer in {timeout} s: {self.log_tail()}")

    def alive(self) -> bool:
        proc = self.sandbox.process
        return proc is not None and proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])
