"""A JupyterHub spawner that starts each user's server inside hubprobe's container.

The server and its kernels share one limited cgroup, as in a Kubernetes pod:
the sandbox (by default the runc container, :mod:`hubprobe.sandbox.oci`) is
made with the profile's limits, ``jupyterhub-singleuser`` runs in it on a
Unix socket, and a loopback port forwards the proxy's and the hub's traffic
to that socket. The container's network is its own loopback only, so the
hub's API is forwarded the other way too: from a port on the container's
loopback, listened on from here (:func:`~hubprobe.hub.forward.tcp_into_namespace`),
so that the container holds the server and its kernels and nothing else,
as a pod (and hubprobe's sandbox) does; the server waits for that port
before it starts. A sandbox whose network namespace cannot be entered runs
a forwarder inside instead (:mod:`hubprobe.hub.inside`).

The spawner owns the sandbox for the server's lifetime: :meth:`stop` closes
it, and if the hub dies the sandbox's watchdog takes it down.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from jupyterhub.spawner import Spawner
from traitlets import Unicode

from hubprobe.hub.forward import Forward, tcp_into_namespace, tcp_to_unix, unix_to_tcp
from hubprobe.jupyter.server import LOCAL_URL, SOCKET_ENV, TOKEN_ENV, URL_ENV
from hubprobe.profiles import DEFAULT_PROFILE, Profile, load_profile
from hubprobe.sandbox import Limits, Sandbox, SandboxError, choose_backend

__all__ = ["DEFAULT_URLS", "ContainerSpawner"]

#: Where a new session opens, per interface (what ``/user/NAME/`` redirects to).
DEFAULT_URLS = {"jupyterlab": "/lab", "notebook7": "/tree", "classic": "/tree"}
_HUB_SOCKET = "hub-api.sock"
_SERVER_SOCKET = "jupyter.sock"
_INSIDE_NETLOC = "127.0.0.1:8888"
#: Made once the hub's API answers on the container's loopback; the server waits for it.
_API_READY = "hub-api.ready"
_WAIT_THEN_EXEC = 'while [ ! -e "$0" ]; do sleep 0.05; done; exec "$@"'


class ContainerSpawner(Spawner):  # type: ignore[misc]  # traitlets classes are untyped
    """Each server in a fresh sandbox with a hub profile's limits."""

    profile = Unicode(DEFAULT_PROFILE, config=True, help="a hubprobe profile name or TOML path")
    backend = Unicode("", config=True, help="a sandbox backend (default: the most faithful)")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandbox: Sandbox | None = None
        self._forwards: list[Forward] = []
        self._log_path: Path | None = None

    def _limits(self, profile: Profile) -> Limits:
        # What JupyterHub's own traits would say, so get_env exports MEM_LIMIT and the rest.
        self.mem_limit = profile.memory_limit_bytes
        self.mem_guarantee = profile.memory_guarantee_bytes
        self.cpu_limit = profile.cpu_limit
        self.cpu_guarantee = profile.cpu_guarantee
        self.default_url = DEFAULT_URLS[profile.interface]
        return Limits.from_profile(profile)

    async def start(self) -> tuple[str, int]:
        profile = load_profile(self.profile)
        limits = self._limits(profile)
        backend = choose_backend(self.backend or None)
        sandbox = await asyncio.to_thread(backend.create, limits)
        self._sandbox = sandbox
        try:
            return await self._start_in(sandbox)
        except BaseException:
            await self.stop()
            raise

    async def _start_in(self, sandbox: Sandbox) -> tuple[str, int]:
        inside, outside = sandbox.socket_dir
        api_port = urllib.parse.urlsplit(self.hub.api_url).port or 80
        home = sandbox.home
        env: dict[str, str | None] = {
            **self.get_env(),
            "JUPYTER_CONFIG_DIR": f"{home}/.jupyter",
            "JUPYTER_RUNTIME_DIR": f"{home}/.local/share/jupyter/runtime",
            "IPYTHONDIR": f"{home}/.ipython",
            "PYTHONUNBUFFERED": "1",
        }
        # A probe reaches its own server as under the sandbox runner (hubprobe.probe.server):
        # over the socket, with the server's own token (scope: access to this server).
        env[SOCKET_ENV] = f"{inside}/{_SERVER_SOCKET}"
        env[TOKEN_ENV] = env.get("JUPYTERHUB_API_TOKEN")
        env[URL_ENV] = LOCAL_URL + str(env.get("JUPYTERHUB_SERVICE_PREFIX") or "/").rstrip("/")
        service = urllib.parse.urlsplit(str(env.get("JUPYTERHUB_SERVICE_URL") or ""))
        # The server listens on the socket only; jupyter_server refuses a socket beside a
        # port other than its default, which the URL's port would set.
        env["JUPYTERHUB_SERVICE_URL"] = service._replace(netloc=_INSIDE_NETLOC).geturl()
        server = [
            sys.executable, "-m", "jupyterhub.singleuser",
            f"--ServerApp.sock={inside}/{_SERVER_SOCKET}", "--ServerApp.sock_mode=0600",
            *self.get_args(),
        ]  # fmt: skip
        if sandbox.runs_as_root:
            server.append("--allow-root")
        own_network = sandbox.own_network
        if own_network:
            # sh waits for the hub's API, then becomes the server (pid 1, as in a pod).
            argv = ["/bin/sh", "-c", _WAIT_THEN_EXEC, f"{inside}/{_API_READY}", *server]
        else:
            owner = None if sandbox.runs_as_root else (1000, 100)
            hub_socket = str(outside / _HUB_SOCKET)
            self._forwards.append(await unix_to_tcp(hub_socket, api_port, owner=owner))
            argv = [sys.executable, "-m", "hubprobe.hub.inside", f"{inside}/{_HUB_SOCKET}",
                    str(api_port), "--", *server]  # fmt: skip
        self._log_path = sandbox.scratch / "singleuser.log"
        with self._log_path.open("wb") as log:
            await asyncio.to_thread(sandbox.spawn, argv, env=env, stdout=log, stderr=log)
        if own_network:
            netns = await self._net_namespace(sandbox)
            self._forwards.append(await tcp_into_namespace(netns, api_port, api_port))
            (outside / _API_READY).touch()
        forward, port = await tcp_to_unix(str(outside / _SERVER_SOCKET))
        self._forwards.append(forward)
        return "127.0.0.1", port

    async def _net_namespace(self, sandbox: Sandbox, timeout: float = 60.0) -> Path:
        """The container's network namespace, once the runtime has made it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            netns = await asyncio.to_thread(sandbox.net_namespace)
            if netns is not None:
                return netns
            proc = sandbox.process
            if proc is not None and proc.poll() is not None:
                raise SandboxError(f"the container ended at start: {self.log_tail()}")
            if asyncio.get_running_loop().time() > deadline:
                raise SandboxError(f"no container after {timeout:.0f} s: {self.log_tail()}")
            await asyncio.sleep(0.05)

    async def poll(self) -> int | None:
        proc = self._sandbox.process if self._sandbox is not None else None
        if proc is None:
            return 0
        code = proc.poll()
        if code is not None:
            self.log.warning("server of %s ended (%s): %s", self.user.name, code, self.log_tail())
        return code

    def log_tail(self, lines: int = 5) -> str:
        if self._log_path is None:
            return "(no log)"
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    async def stop(self, now: bool = False) -> None:  # noqa: ARG002  # JupyterHub's signature
        forwards, self._forwards = self._forwards, []
        for forward in forwards:
            await forward.close()
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            try:
                await asyncio.to_thread(sandbox.close)
            except SandboxError as exc:
                self.log.error("tearing down %s's sandbox: %s", self.user.name, exc)
