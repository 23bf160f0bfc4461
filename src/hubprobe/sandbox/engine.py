"""docker and podman backends: one container per sandbox, as a hub runs one per user.

The container is started with ``--memory`` and ``--memory-swap`` equal (no
swap), ``--cpus`` and the spawner's variables, and holds only ``sleep``; the
command then runs in it through ``exec``. Keeping the container up after the
command ends is what lets a reading be taken afterwards (an exited container's
cgroup is gone), and ``exec``'s exit status is the command's (137 when
OOM-killed).

The home is our sparse ext4 image: we attach it to a loop device and give the
engine a ``local`` volume with ``type=ext4,device=/dev/loopN``. The image file
itself cannot be the device: Docker's local driver calls mount(2) directly
(moby/sys ``mount.Mount``), which takes no ``loop`` option -- only mount(8)
does. So this backend needs root, and an engine on this host (the loop
device must be where the engine mounts).

Readings come from the container's cgroup files on this host, with the same
readers as every other backend. ``docker stats`` is not used: it gives a CPU
percentage, no cumulative CPU time, no peak and no OOM count. Once the
container is gone (an OOM kill with ``memory.oom.group`` takes ``sleep`` too),
only ``inspect``'s ``OOMKilled`` remains, next to the last reading taken.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from hubprobe.cgroup import fs
from hubprobe.cgroup.locate import ProcessGroups, locate
from hubprobe.sandbox import home
from hubprobe.sandbox.base import (
    Availability,
    Backend,
    Fidelity,
    Limits,
    Reading,
    Sandbox,
    SandboxError,
)
from hubprobe.sandbox.common import NotUsable, first_line, namespace_tools_missing, run_tool
from hubprobe.sandbox.inplace import read_groups

__all__ = [
    "DEFAULT_IMAGE",
    "HOME_IN_CONTAINER",
    "ContainerBackend",
    "ContainerSandbox",
    "DockerBackend",
    "DockerSandbox",
    "PodmanBackend",
    "PodmanSandbox",
    "engine_problem",
    "exec_argv",
    "image",
    "run_argv",
    "volume_argv",
]

DEFAULT_IMAGE = "python:3.11-slim"
#: Where the home is mounted: the path Jupyter's docker-stacks images use.
HOME_IN_CONTAINER = "/home/jovyan"
SOCKET_DIR = "/run/hubprobe"
LABEL = "hubprobe=1"  # so that leftovers of a killed hubprobe can be found


def image() -> str:
    return os.environ.get("HUBPROBE_IMAGE") or DEFAULT_IMAGE


def run_argv(
    engine: str, name: str, volume: str, limits: Limits, image_ref: str, sockets: str = ""
) -> list[str]:
    """The container that holds the limits, the home and the spawner's variables.

    ``sockets``: a host folder shown at SOCKET_DIR, where the server's Unix socket goes.
    """
    argv = [
        engine, "run", "--detach", "--name", name, "--label", LABEL,
        "--memory", str(limits.memory_bytes),
        # Equal to --memory: no swap (without it Docker allows as much swap again).
        "--memory-swap", str(limits.memory_bytes),
        "--cpus", f"{limits.cpu:g}",
        "--oom-kill-disable=false",
        "--mount", f"type=volume,src={volume},dst={HOME_IN_CONTAINER}",
        "--workdir", HOME_IN_CONTAINER,
        "--env", f"HOME={HOME_IN_CONTAINER}",
    ]  # fmt: skip
    if sockets:
        argv += ["--mount", f"type=bind,src={sockets},dst={SOCKET_DIR}"]
    argv += ["--pids-limit", str(limits.pids)]
    for key, value in sorted(limits.env.items()):
        argv += ["--env", f"{key}={value}"]
    # Whatever the image's entrypoint, the container only waits for exec.
    return [*argv, "--entrypoint", "sleep", image_ref, "infinity"]


def exec_argv(
    engine: str,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    *,
    interactive: bool = False,
) -> list[str]:
    out = [engine, "exec", "--workdir", cwd]
    if interactive:
        out.append("--interactive")
    for key, value in sorted(env.items()):
        out += ["--env", f"{key}={value}"]
    return [*out, name, *argv]


def volume_argv(engine: str, volume: str, device: str) -> list[str]:
    return [
        engine, "volume", "create", "--driver", "local", "--label", LABEL,
        "--opt", "type=ext4", "--opt", f"device={device}", volume,
    ]  # fmt: skip


def engine_problem(engine: str, info: Mapping[str, Any], hostname: str) -> NotUsable | None:
    """What in ``<engine> info --format '{{json .}}'`` rules the private home out."""
    if engine == "podman":
        host = info.get("host", {})
        rootless = bool(host.get("security", {}).get("rootless"))
        name = str(host.get("hostname", hostname))
    else:
        rootless = any("rootless" in str(o) for o in info.get("SecurityOptions") or [])
        name = str(info.get("Name", hostname))
    if rootless:
        return NotUsable(
            f"the {engine} engine runs rootless and cannot mount the ext4 home image",
            f"use a rootful {engine} as root, or the systemd backend",
        )
    if name != hostname:
        return NotUsable(
            f"the {engine} engine runs on another host ({name}), which cannot see a loop"
            " device made here",
            "run hubprobe on the engine's host, or use another backend",
        )
    return None


class ContainerBackend(Backend):
    """What docker and podman share; subclasses name the engine."""

    engine: ClassVar[str]
    fidelity = Fidelity()

    def _start_fix(self) -> str:
        if self.engine == "docker":
            return "start the Docker engine (e.g. `systemctl start docker`) or use another backend"
        return "see `podman info` for what is wrong, or use another backend"

    def _problem(self) -> NotUsable | None:
        engine = self.engine
        if shutil.which(engine) is None:
            return NotUsable(f"no {engine} command", f"install {engine}, or use another backend")
        if os.geteuid() != 0:
            return NotUsable(
                "the private home (an ext4 image on a loop device) needs root",
                "run hubprobe as root (sudo), or use the systemd backend (no private home)",
            )
        problem = namespace_tools_missing(("mkfs.ext4", "losetup"))
        if problem is not None:
            return problem
        info = run_tool([engine, "info", "--format", "{{json .}}"])
        if info.returncode != 0:
            said = first_line(info.stderr) or f"`{engine} info` failed"
            return NotUsable(said, self._start_fix())
        try:
            parsed = json.loads(info.stdout)
        except json.JSONDecodeError:
            parsed = {}
        problem = engine_problem(engine, parsed, socket.gethostname())
        if problem is not None:
            return problem
        ref = image()
        if run_tool([engine, "image", "inspect", "--format", "{{.Id}}", ref]).returncode != 0:
            return NotUsable(
                f"the image {ref} is not here",
                f"`{engine} pull {ref}`, or set HUBPROBE_IMAGE to an image you have",
            )
        return None

    def check(self) -> Availability:
        problem = self._problem()
        if problem is not None:
            return problem.availability(self.name)
        return Availability(self.name, True, f"{self.engine} engine on this host, image {image()}")

    def create(
        self, limits: Limits, *, workdir: Path | None = None, expose: Sequence[Path] = ()
    ) -> ContainerSandbox:
        # The command runs in the image's own filesystem, not the host's: a host
        # interpreter cannot be run there, whatever is exposed.
        del expose
        sandbox = DockerSandbox if self.engine == "docker" else PodmanSandbox
        return sandbox(limits, image(), workdir=workdir)


class DockerBackend(ContainerBackend):
    name = "docker"
    engine = "docker"
    summary = "root; a Docker container with --memory/--memory-swap/--cpus and an ext4 home"


class PodmanBackend(ContainerBackend):
    name = "podman"
    engine = "podman"
    summary = "root; a rootful Podman container with --memory/--memory-swap/--cpus and an ext4 home"


class ContainerSandbox(Sandbox):
    """One container; ``backend`` names the engine's command (docker, podman)."""

    shares_host_files = False

    def __init__(self, limits: Limits, image_ref: str, *, workdir: Path | None = None) -> None:
        super().__init__(limits)
        engine = self.backend
        self.name = f"hubprobe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._volume = f"{self.name}-home"
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=workdir))
        self._image = self._workdir / "home.img"
        self._loop = ""
        self._made: list[str] = []  # what teardown must remove: "volume", "container"
        self._groups: ProcessGroups | None = None
        self._last: Reading | None = None
        try:
            home.make_image(self._image, limits.storage_bytes)
            self._loop = self._must(["losetup", "--find", "--show", str(self._image)]).strip()
            self._must(volume_argv(engine, self._volume, self._loop))
            self._made.append("volume")
            self._sockets = self._workdir / "sock"
            self._sockets.mkdir(mode=0o700)
            self._must(
                run_argv(engine, self.name, self._volume, limits, image_ref, str(self._sockets))
            )
            self._made.append("container")
            if limits.oom_group:
                self._set_oom_group()
        except BaseException:
            self._teardown()
            raise

    def _must(self, argv: Sequence[str]) -> str:
        result = run_tool(argv, timeout=120)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            said = lines[-1] if lines else f"exit status {result.returncode}"
            msg = f"`{' '.join(argv[:3])} ...` failed: {said}"
            raise SandboxError(msg)
        return result.stdout

    def _set_oom_group(self) -> None:
        # Docker and Podman leave memory.oom.group at 0; Kubernetes >= 1.28 sets it.
        groups = self._container_groups()
        if groups is None or groups.version != 2:
            msg = (
                f"memory.oom.group needs cgroup v2, and {self.backend} runs on v1 here;"
                " use the cgroup1 backend for this profile (it emulates the group kill)"
            )
            raise SandboxError(msg)
        (groups.memory / "memory.oom.group").write_text("1")

    @property
    def home(self) -> str:
        return HOME_IN_CONTAINER

    @property
    def socket_dir(self) -> tuple[str, Path]:
        return SOCKET_DIR, self._sockets

    def _popen(
        self, argv: Sequence[str], env: dict[str, str], cwd: str | None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        if kwargs.pop("expose", None):
            msg = (
                f"the {self.backend} backend runs its image's own files and cannot show host"
                " files inside; use the oci backend"
            )
            raise SandboxError(msg)
        # Only what differs from our own environment goes in: the container has
        # its own PATH and the rest; the profile's variables were set at run.
        extra = {k: v for k, v in env.items() if os.environ.get(k) != v}
        stdin = kwargs.get("stdin")
        interactive = stdin is not None and stdin != subprocess.DEVNULL
        command = exec_argv(
            self.backend, self.name, argv, extra, cwd or self.home, interactive=interactive
        )
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            command, start_new_session=True, **kwargs
        )

    def _container_groups(self) -> ProcessGroups | None:
        """The container's cgroup directories on this host; None once it has stopped."""
        if self._groups is None:
            result = run_tool([self.backend, "inspect", "--format", "{{.State.Pid}}", self.name])
            pid = result.stdout.strip()
            if result.returncode != 0 or not pid.isdigit() or pid == "0":
                return None
            try:
                text = (Path("/proc") / pid / "cgroup").read_text()
            except OSError:
                return None
            self._groups = locate(fs.parse_proc_cgroup(text), fs.cgroup_mounts(), strict=True)
        return self._groups

    def _read(self) -> Reading:
        groups = self._container_groups()
        if groups is not None:
            try:
                peak = self._last.peak_memory_bytes if self._last else 0
                self._last = read_groups(groups, peak)
            except FileNotFoundError:
                pass
            else:
                return self._last
        out = run_tool([self.backend, "inspect", "--format", "{{.State.OOMKilled}}", self.name])
        oom_killed = out.stdout.strip() == "true"
        last = self._last or Reading(0, 0, self.limits.memory_bytes, 0, 0.0, 0.0, 0.0)
        return dataclasses.replace(
            last,
            memory_bytes=0,
            working_set_bytes=0,
            oom_kills=max(last.oom_kills, int(oom_killed)),
        )

    def _teardown(self) -> None:
        if "container" in self._made:
            run_tool([self.backend, "rm", "--force", self.name])
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        if "volume" in self._made:
            run_tool([self.backend, "volume", "rm", "--force", self._volume])
        self._made.clear()
        if self._loop:
            # Detaches now, or as soon as the engine's mount is gone (autoclear).
            run_tool(["losetup", "--detach", self._loop])
            self._loop = ""
        home.release(self._workdir, self._image)


class DockerSandbox(ContainerSandbox):
    backend = "docker"


class PodmanSandbox(ContainerSandbox):
    backend = "podman"
