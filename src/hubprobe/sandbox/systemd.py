"""systemd backend: an unprivileged transient scope of the user's systemd manager.

``systemd-run --user --scope`` puts the command in a scope unit with
``MemoryMax``, ``MemorySwapMax=0`` and ``CPUQuota``; the user manager writes
them to the scope's cgroup v2 files, which we then read directly. What it
cannot do without privileges (so :attr:`SystemdBackend.fidelity` says so):
give the command a cgroup namespace of its own (joblib inside sees the host's
``/sys/fs/cgroup``) or a loop-mounted home of the profile's size (the home is
a plain temporary directory).

A scope lives only while a process is in it, and systemd removes its cgroup
with it. To read the sandbox after the command has ended (as
:func:`hubprobe.sandbox.run.run_command` does), a ``cat`` on a pipe from
hubprobe (a FIFO hubprobe holds open) stays in the scope until teardown, or
until hubprobe dies and the FIFO loses its last writer. It costs the scope
well under a MiB.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.sandbox.base import (
    Availability,
    Backend,
    Fidelity,
    Limits,
    Reading,
    Sandbox,
    SandboxError,
    reading_from,
)
from hubprobe.sandbox.cgroup2 import NEEDED
from hubprobe.sandbox.common import NotUsable, first_line, run_tool

__all__ = [
    "OOM_POLICY_SINCE",
    "SystemdBackend",
    "SystemdSandbox",
    "parse_properties",
    "parse_version",
    "scope_argv",
]

#: First systemd whose scope units take OOMPolicy= (252: "scope units now also
#: provide oom-kill status"). Before it, a scope ignores OOM kills, which is
#: what a process-scoped profile wants anyway.
OOM_POLICY_SINCE = 252
#: States of a user manager that answers (``degraded``: some unit failed).
_ANSWERING = ("initializing", "starting", "running", "degraded")
_PROC = Path("/proc")
_DELEGATE_FIX = (
    "as root: mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\\nDelegate="
    "cpu cpuset io memory pids\\n' > /etc/systemd/system/user@.service.d/delegate.conf &&"
    " systemctl daemon-reload; then log out and in again"
)
# Keeps the scope (and its cgroup files) alive after the command ends: a cat
# reading a FIFO that hubprobe holds open for writing, double-forked so that
# the command does not see it as a child, with no fd of the caller's (a
# holder keeping the caller's stdout pipe open would hang communicate()).
# A FIFO rather than an inherited pipe fd: dash takes only one-digit fds.
_HOLD = r"""
(exec cat "$HUBPROBE_HOLD" </dev/null >/dev/null 2>&1 &)
unset HUBPROBE_HOLD
exec "$@"
"""


def parse_version(text: str) -> int | None:
    """``systemd 252 (252.38-1~deb12u1)`` -> 252."""
    match = re.match(r"\s*systemd (\d+)", text)
    return int(match.group(1)) if match else None


def parse_properties(text: str) -> dict[str, str]:
    """``systemctl show`` output: ``Key=value`` lines."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _cpu_percent(cpus: float) -> str:
    return f"{round(cpus * 100, 2):g}%"


def scope_argv(
    unit: str, limits: Limits, argv: Sequence[str], version: int | None = None
) -> list[str]:
    """The ``systemd-run`` command line that starts ``argv`` in a limited scope."""
    props = [
        f"MemoryMax={limits.memory_bytes}",
        "MemorySwapMax=0",
        f"CPUQuota={_cpu_percent(limits.cpu)}",
    ]
    if version is None or version >= OOM_POLICY_SINCE:
        # A scope's default OOMPolicy is "stop" (DefaultOOMPolicy): one kernel
        # OOM kill would end the whole session. "continue" keeps the kernel's
        # choice of victim; "kill" is memory.oom.group=1, as on Kubernetes >= 1.28.
        props.append(f"OOMPolicy={'kill' if limits.oom_group else 'continue'}")
    elif limits.oom_group:
        msg = (
            f"systemd {version} cannot kill a whole scope on OOM (OOMPolicy= needs systemd >="
            f" {OOM_POLICY_SINCE}); use the cgroup2 or cgroup1 backend for this profile"
        )
        raise SandboxError(msg)
    head = ["systemd-run", "--user", "--scope", "--quiet", "--collect", "--unit", unit]
    for prop in props:
        head += ["-p", prop]
    return [*head, "--", "/bin/sh", "-c", _HOLD, "hubprobe-hold", *argv]


def _v2_dir(control_group: str, proc: Path = _PROC) -> Path:
    mount = next((m for m in fs.cgroup_mounts(proc) if m.version == 2), None)
    if mount is None:
        raise NotUsable("no cgroup v2 hierarchy is mounted", "systemd --user needs cgroup v2")
    return mount.mountpoint / control_group.lstrip("/")


class SystemdBackend(Backend):
    name = "systemd"
    summary = "unprivileged; a transient systemd --user scope with MemoryMax and CPUQuota"
    fidelity = Fidelity(own_cgroup_view=False, private_home=False, contained=False)

    def __init__(self, proc: Path = _PROC) -> None:
        self._proc = proc

    def _version(self) -> int | None:
        return parse_version(run_tool(["systemd-run", "--version"]).stdout)

    def _problem(self) -> NotUsable | None:
        absent = [c for c in ("systemd-run", "systemctl") if shutil.which(c) is None]
        if absent:
            return NotUsable(
                f"commands not found: {', '.join(absent)}",
                "this backend needs systemd; use the docker or podman backend",
            )
        try:
            init = (self._proc / "1" / "comm").read_text().strip()
        except OSError:
            init = "systemd"  # hidden /proc: let systemctl's answer decide
        if init != "systemd":
            return NotUsable(
                f"systemd is not PID 1 here (PID 1 is {init})",
                "this backend needs a machine booted with systemd; use the docker or podman"
                " backend",
            )
        state = run_tool(["systemctl", "--user", "is-system-running"])
        answer = state.stdout.strip()
        if answer not in _ANSWERING:
            said = first_line(state.stderr) or answer or f"exit status {state.returncode}"
            return NotUsable(
                f"no systemd user manager answers here ({said})",
                "run hubprobe as a user logged in through systemd (XDG_RUNTIME_DIR set), or"
                " `loginctl enable-linger $USER` (as root: systemctl --user needs a user session)",
            )
        shown = parse_properties(
            run_tool(["systemctl", "--user", "show", "-p", "ControlGroup"]).stdout
        )
        if not shown.get("ControlGroup"):
            return NotUsable("the user manager reports no cgroup", "systemd --user needs cgroup v2")
        try:
            manager = _v2_dir(shown["ControlGroup"], self._proc)
            offered = (manager / "cgroup.controllers").read_text().split()
        except NotUsable as exc:
            return exc
        except OSError as exc:
            return NotUsable(f"cannot read the user manager's cgroup: {exc}", _DELEGATE_FIX)
        missing = [c for c in NEEDED if c not in offered]
        if missing:
            return NotUsable(
                f"the {' and '.join(missing)} controller is not delegated to the user manager,"
                " so MemoryMax= or CPUQuota= would not be enforced",
                _DELEGATE_FIX,
            )
        return None

    def check(self) -> Availability:
        problem = self._problem()
        if problem is not None:
            return problem.availability(self.name)
        version = self._version()
        return Availability(
            self.name, True, f"systemd {version or '?'} user manager with memory and cpu delegated"
        )

    def create(
        self, limits: Limits, *, workdir: Path | None = None, expose: Sequence[Path] = ()
    ) -> SystemdSandbox:
        del expose  # a scope runs on the host's filesystem: nothing to expose
        return SystemdSandbox(limits, version=self._version(), workdir=workdir)


class SystemdSandbox(Sandbox):
    backend = "systemd"

    def __init__(
        self, limits: Limits, *, version: int | None = None, workdir: Path | None = None
    ) -> None:
        super().__init__(limits)
        name = f"hubprobe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.unit = f"{name}.scope"
        self._version = version
        # Checked now, so that an unsupported profile fails before anything runs.
        scope_argv(name, limits, [], version)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        self._home = self._workdir / "home"
        self._home.mkdir()
        self._group: Path | None = None
        self._hold: int | None = None  # our fd on the holder's FIFO
        self._last: Reading | None = None
        self._peak_seen = 0

    @property
    def home(self) -> str:
        return str(self._home)

    def _popen(
        self, argv: Sequence[str], env: dict[str, str], cwd: str | None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        fifo = self._workdir / "hold"
        os.mkfifo(fifo, 0o600)
        # Read-write: the open does not wait for a reader, and we count as the writer.
        self._hold = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
        env["HUBPROBE_HOLD"] = str(fifo)
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            scope_argv(self.unit.removesuffix(".scope"), self.limits, argv, self._version),
            env=env,
            cwd=cwd,
            start_new_session=True,
            **kwargs,
        )

    def _scope_group(self, wait: float = 10.0) -> Path | None:
        """The scope's cgroup directory once systemd-run has registered the scope.

        None if the command has ended and the scope is gone with it.
        """
        deadline = time.monotonic() + wait
        while self._group is None:
            out = run_tool(["systemctl", "--user", "show", "-p", "ControlGroup", self.unit]).stdout
            control_group = parse_properties(out).get("ControlGroup", "")
            if control_group:
                self._group = _v2_dir(control_group)
            elif self.process is not None and self.process.poll() is not None:
                return None
            elif time.monotonic() > deadline:
                msg = f"the scope {self.unit} never appeared; systemd-run's error is on stderr"
                raise SandboxError(msg)
            else:
                time.sleep(0.02)
        return self._group

    def _read(self) -> Reading:
        group = self._scope_group()
        if group is None:
            return self._after_scope_ended()
        try:
            mem = fs.read_memory_v2(group)
            cpu = fs.read_cpu_v2(group)
        except FileNotFoundError:
            return self._after_scope_ended()
        self._peak_seen = max(self._peak_seen, mem.usage_bytes)
        self._last = reading_from(mem, cpu, self._peak_seen)
        return self._last

    def _after_scope_ended(self) -> Reading:
        """The scope ended before teardown: OOMPolicy=kill took the holder too.

        Its files are gone, so CPU time and peak are those of the last reading
        taken (zero if none was). A SIGKILL of the command with the scope gone
        is counted as the OOM kill it almost surely was.
        """
        last = self._last or reading_from(
            fs.MemoryReading(0, None, self.limits.memory_bytes, 0),
            fs.CpuReading(None, None, None),
        )
        killed = self.process is not None and self.process.returncode == -signal.SIGKILL
        return dataclasses.replace(last, memory_bytes=0, oom_kills=max(last.oom_kills, int(killed)))

    def _teardown(self) -> None:
        if self.process is not None:
            for verb in (["kill", "--signal=SIGKILL"], ["stop"]):
                run_tool(["systemctl", "--user", *verb, self.unit])
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        if self._hold is not None:
            os.close(self._hold)
            self._hold = None
        shutil.rmtree(self._workdir, ignore_errors=True)
