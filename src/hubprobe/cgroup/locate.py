"""The one way to find where a process is accounted: its memory and cpu cgroups.

Used by ``hubprobe limits``, the OOM notice, the sandbox backends that make
child cgroups under our own, and those that read a container's groups from
outside. Pure over a parsed ``/proc/<pid>/cgroup`` and the cgroup mounts, so
fixture trees test it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.errors import ExitCode, HubprobeError

__all__ = ["NoCgroup", "ProcessGroups", "locate", "own_groups", "v1_mount"]


class NoCgroup(HubprobeError):
    """The process is in no cgroup hierarchy we can read."""

    exit_code = ExitCode.NO_SANDBOX


@dataclasses.dataclass(frozen=True)
class ProcessGroups:
    """The cgroup directories one process is charged to."""

    version: int
    memory: Path
    cpu: Path | None  # v1: the cpu hierarchy's group; v2: same as memory
    cpuacct: Path | None
    top: Path  # the memory hierarchy's mountpoint: where limits stop being ours
    mount: fs.CgroupMount  # the memory hierarchy's mount


def v1_mount(mounts: Sequence[fs.CgroupMount], controller: str) -> fs.CgroupMount | None:
    return next((m for m in mounts if m.version == 1 and controller in m.controllers), None)


def _dir(mount: fs.CgroupMount, path: str, strict: bool) -> Path:
    group = mount.mountpoint / path.lstrip("/")
    if group.is_dir():
        return group
    if strict:
        msg = f"cgroup {path} is not under {mount.mountpoint} here; is the engine on this host?"
        raise NoCgroup(msg)
    # In a container without its own cgroup namespace, /proc/self/cgroup names
    # the host's path while the mount's root is our own cgroup.
    return mount.mountpoint


def locate(
    own: Mapping[str, str],
    mounts: Sequence[fs.CgroupMount],
    *,
    strict: bool = False,
    version: int | None = None,
) -> ProcessGroups:
    """Where a process's memory and cpu are accounted: v1 if memory is there, else v2.

    ``own`` is a parsed ``/proc/<pid>/cgroup``. ``strict``: the paths must
    exist as named (reading another process's cgroup, no fallback to a root).
    ``version`` asks for one hierarchy (a backend that works only on v1 or v2).
    """
    memory = v1_mount(mounts, "memory")
    if version != 2 and memory is not None and "memory" in own:
        cpu, acct = v1_mount(mounts, "cpu"), v1_mount(mounts, "cpuacct")
        return ProcessGroups(
            version=1,
            memory=_dir(memory, own["memory"], strict),
            cpu=_dir(cpu, own.get("cpu", "/"), strict) if cpu else None,
            cpuacct=_dir(acct, own.get("cpuacct", "/"), strict) if acct else None,
            top=memory.mountpoint,
            mount=memory,
        )
    if version == 1:
        raise NoCgroup(
            "no cgroup v1 memory hierarchy holds this process",
            "on a cgroup v2 machine use the cgroup2 backend",
        )
    v2 = next((m for m in mounts if m.version == 2), None)
    if v2 is None:
        raise NoCgroup(
            "no cgroup v2 hierarchy is mounted" if version == 2 else
            "this process is in no memory cgroup (neither v1 nor v2)",
            "on a cgroup v1 machine use the cgroup1 backend" if version == 2 else
            "run where the session has a cgroup (a hub's container, or as root on Linux)",
        )  # fmt: skip
    if "" not in own:
        raise NoCgroup(
            "this process is in no cgroup v2 group (/proc/self/cgroup has no 0:: line)",
            "use the cgroup1 backend",
        )
    group = _dir(v2, own[""], strict)
    return ProcessGroups(
        version=2, memory=group, cpu=group, cpuacct=None, top=v2.mountpoint, mount=v2
    )


def own_groups(
    proc: Path = Path("/proc"), pid: int | str = "self", *, version: int | None = None
) -> ProcessGroups:
    """Where process ``pid`` (this one by default) is accounted, as it sees the mounts."""
    return locate(fs.own_cgroups(proc, pid), fs.cgroup_mounts(proc), version=version)
