"""A real jupyter_server inside a sandbox, reachable only through a Unix socket.

Started as JupyterHub's single-user server would be: MEM_LIMIT and CPU_LIMIT
in its environment (the sandbox sets them from the profile), the private
home as root and working directory, jupyter-resource-usage loaded from its
installed config. Kernels inherit the server's environment, which also
carries the server's URL and token so that probes can use the REST API.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from hubprobe.jupyter.api import ApiError, ServerAPI
from hubprobe.sandbox import Sandbox, SandboxError

__all__ = ["SOCKET_ENV", "TOKEN_ENV", "URL_ENV", "JupyterServer"]

#: What a probe inside needs to reach its own server (kernels inherit the server's environment).
SOCKET_ENV = "HUBPROBE_SERVER_SOCKET"
TOKEN_ENV = "HUBPROBE_SERVER_TOKEN"
#: The server's base URL when it has one (a hub's /user/NAME/); else LOCAL_URL.
URL_ENV = "HUBPROBE_SERVER_URL"
#: The URL's only job over a Unix socket: the Host header and the websocket's scheme.
LOCAL_URL = "http://localhost"


def _readable_by_all(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            path = Path(root, name)
            path.chmod(path.stat().st_mode | 0o555)
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444)
    folder.chmod(folder.stat().st_mode | 0o555)


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
        self.token = secrets.token_hex(16)
        inside, outside = sandbox.socket_dir
        #: Only hubprobe and the sandbox can enter the folder: no port on any network.
        self.socket_inside = f"{inside}/jupyter.sock"
        self.socket_path = str(outside / "jupyter.sock")
        self.url = LOCAL_URL
        self.api = ServerAPI(self.url, self.token, socket_path=self.socket_path)
        self.version = ""

    def start(self, timeout: float = 60.0) -> ServerAPI:
        argv = [
            self.python, "-m", "jupyter_server",
            f"--ServerApp.sock={self.socket_inside}", "--ServerApp.sock_mode=0600",
            "--ServerApp.open_browser=False",
        ]  # fmt: skip
        if self.sandbox.runs_as_root:
            argv.append("--allow-root")  # the imitation backends; a hub (and oci) runs as jovyan
        home = self.sandbox.home
        env: dict[str, str | None] = {
            # The token travels in the environment, never in a command line
            # (anyone on the machine can read those with ps).
            "JUPYTER_TOKEN": self.token,
            SOCKET_ENV: self.socket_inside,
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
        if self.seed is not None and not self.sandbox.runs_as_root:
            _readable_by_all(self.seed)  # our own copy; jovyan copies it into the home
        log = self.log_path.open("wb")
        expose = [self.seed] if self.seed is not None else []
        proc = self.sandbox.spawn(
            argv, env=env, expose=expose, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SandboxError(f"jupyter_server exited at start: {self.log_tail()}")
            try:
                self.version = str(self.api.request("GET", "/api").get("version", ""))
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
