"""inplace backend: measure the limits we already live under (a terminal on a hub).

Nothing is created: the command runs as a plain child, and readings come from
this process's own cgroup (v1 or v2) -- the user server's container, with the
server, its kernels and hubprobe itself in it, which is what the hub's limit
applies to. It only makes sense where that cgroup has a memory limit, and only
for the profile whose limit it is.

The cgroup-locating helpers here also serve backends that read a cgroup they
did not make (the container backends read their container's from the host).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.cgroup.fs import CpuReading
from hubprobe.cgroup.locate import NoCgroup, ProcessGroups, own_groups
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
from hubprobe.sandbox.common import NotUsable
from hubprobe.units import format_bytes

__all__ = [
    "LIMIT_TOLERANCE",
    "InplaceBackend",
    "InplaceSandbox",
    "effective_memory_limit",
    "read_groups",
]

#: How far the session's memory limit may be from the profile's (a fraction).
LIMIT_TOLERANCE = 0.01
_PROC = Path("/proc")


def effective_memory_limit(groups: ProcessGroups) -> int | None:
    """The tightest memory limit over the group and its ancestors that we can see."""
    if groups.version == 1:
        # v1 works the ancestors' limits out for us.
        stat = fs.read_keyed(groups.memory / "memory.stat")
        hier = stat.get("hierarchical_memory_limit")
        if hier is not None:
            return None if hier >= fs.UNLIMITED else hier
        return fs.read_memory_v1(groups.memory).limit_bytes
    limits = []
    group = groups.memory
    while True:
        text = (group / "memory.max").read_text().strip() if (group / "memory.max").exists() else ""
        if text.isdigit():
            limits.append(int(text))
        if group in (groups.top, group.parent):
            break
        group = group.parent
    return min(limits, default=None)


def read_groups(groups: ProcessGroups, peak_seen: int = 0) -> Reading:
    if groups.version == 1:
        mem = fs.read_memory_v1(groups.memory)
        cpu = (
            fs.read_cpu_v1(groups.cpu, groups.cpuacct)
            if groups.cpu is not None
            else CpuReading(None, None, None)
        )
    else:
        mem = fs.read_memory_v2(groups.memory)
        cpu = fs.read_cpu_v2(groups.memory)
    reading = reading_from(mem, cpu, max(peak_seen, mem.usage_bytes))
    return dataclasses.replace(reading, memory_limit_bytes=effective_memory_limit(groups))


def _no_limit(groups: ProcessGroups) -> NotUsable:
    return NotUsable(
        f"this session's memory cgroup ({groups.memory}) has no memory limit to measure",
        "use inplace only in a terminal on a hub (a limited container); elsewhere let"
        " hubprobe pick a backend that sets limits",
    )


class InplaceBackend(Backend):
    name = "inplace"
    summary = "already in a limited container (a hub terminal): measure, do not create"
    # Inside a hub's container the cgroup view and the home are the hub's own,
    # but hubprobe sets no limit: it can only check that they match the profile.
    fidelity = Fidelity(enforces_limits=False)

    def __init__(self, proc: Path = _PROC) -> None:
        self._proc = proc

    def _groups(self) -> ProcessGroups:
        try:
            return own_groups(self._proc)
        except NoCgroup as exc:
            raise NotUsable(
                exc.reason, "use inplace only where the session runs in a limited container"
            ) from None

    def check(self) -> Availability:
        try:
            groups = self._groups()
            limit = effective_memory_limit(groups)
            if limit is None:
                raise _no_limit(groups)
        except NotUsable as exc:
            return exc.availability(self.name)
        return Availability(
            self.name,
            True,
            f"this session's cgroup {groups.memory} has a {format_bytes(limit)} memory limit",
        )

    def create(
        self, limits: Limits, *, workdir: Path | None = None, expose: Sequence[Path] = ()
    ) -> InplaceSandbox:
        del workdir, expose  # nothing is made: the session's own home and filesystem are used
        groups = self._groups()
        actual = effective_memory_limit(groups)
        if actual is None:
            raise _no_limit(groups)
        wanted = limits.memory_bytes
        if abs(actual - wanted) > LIMIT_TOLERANCE * wanted:
            msg = (
                f"this session's memory limit is {actual} bytes ({format_bytes(actual)}) but the"
                f" profile's is {wanted} bytes ({format_bytes(wanted)}); pick the profile that"
                " matches this hub (`hubprobe profiles`) or run elsewhere"
            )
            raise SandboxError(msg)
        return InplaceSandbox(limits, groups)


def _process_table(proc: Path) -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) for every process we can see."""
    table: dict[int, tuple[int, int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # After the command name in parentheses: state, ppid, pgrp, ...
        state_ppid_pgrp = text[text.rindex(")") + 2 :].split()[:3]
        table[int(stat.parent.name)] = (int(state_ppid_pgrp[1]), int(state_ppid_pgrp[2]))
    return table


def _tree(root: int, table: Mapping[int, tuple[int, int]]) -> list[int]:
    """``root`` and every descendant of it."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += [child for child, (parent, _) in table.items() if parent == pid]
    return out


def _sigkill(pid: int, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)


class InplaceSandbox(Sandbox):
    backend = "inplace"

    def __init__(self, limits: Limits, groups: ProcessGroups) -> None:
        super().__init__(limits)
        self._groups = groups
        self._peak_seen = 0

    @property
    def home(self) -> str:
        return os.environ.get("HOME") or str(Path.home())

    def _popen(
        self, argv: Sequence[str], env: dict[str, str], cwd: str | None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        # Its own session and process group: teardown can then kill exactly what it started.
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            list(argv), env=env, cwd=cwd, start_new_session=True, **kwargs
        )

    def _read(self) -> Reading:
        reading = read_groups(self._groups, self._peak_seen)
        self._peak_seen = reading.peak_memory_bytes
        return reading

    def _teardown(self) -> None:
        """Kill the child's process group and its descendants -- nothing else in the session."""
        child = self.process
        if child is None:
            return
        pgid = child.pid  # start_new_session: the child leads its own group
        # The real process table, whichever /proc the cgroups were read from.
        table = _process_table(_PROC)
        if child.returncode is None:
            # Not reaped yet, so neither its pid nor its group id can be reused:
            # signalling them is safe. Descendants are included because
            # jupyter_client starts kernels in sessions of their own.
            for pid in _tree(child.pid, table):
                _sigkill(pid)
            _sigkill(pgid, group=True)
            child.wait()
            return
        # Reaped: the group id stays reserved only while members of the group
        # live; a process *leading* a group with that id is someone else's.
        members = [pid for pid, (_, group) in table.items() if group == pgid]
        if members and pgid not in members:
            _sigkill(pgid, group=True)
