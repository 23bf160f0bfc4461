"""The limits the current process lives under, as a student's session sees them.

What ``hubprobe limits`` prints, inside a sandbox or in a terminal on a real
hub: the cgroup's memory and CPU limits and usage, JupyterHub's
``MEM_LIMIT``/``CPU_LIMIT``, what ``os.cpu_count()`` says, and the home's size.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.cgroup.locate import NoCgroup, own_groups

__all__ = ["SessionLimits", "read_session"]


@dataclasses.dataclass(frozen=True)
class SessionLimits:
    cgroup_version: int | None
    memory_limit_bytes: int | None
    memory_usage_bytes: int | None
    memory_peak_bytes: int | None
    oom_kills: int | None
    cpu_limit: float | None
    cpu_seconds: float | None
    throttled_seconds: float | None
    env_mem_limit: str | None
    env_cpu_limit: str | None
    os_cpu_count: int | None
    home: str
    home_size_bytes: int | None
    home_free_bytes: int | None


def _groups(proc: Path) -> tuple[int | None, Path | None, Path | None, Path | None]:
    """(version, memory dir, cpu dir, cpuacct dir) of the current process."""
    try:
        groups = own_groups(proc)
    except NoCgroup:
        return None, None, None, None
    if groups.version == 2 and not (groups.memory / "memory.max").exists():
        return None, None, None, None  # the v2 root: no limits to read
    return groups.version, groups.memory, groups.cpu, groups.cpuacct


def read_session(
    proc: Path = Path("/proc"), environ: Mapping[str, str] | None = None
) -> SessionLimits:
    env = os.environ if environ is None else environ
    version, mem_dir, cpu_dir, acct_dir = _groups(proc)
    mem = cpu = None
    if version == 1 and mem_dir is not None:
        mem = fs.read_memory_v1(mem_dir)
        if cpu_dir is not None and cpu_dir.is_dir():
            cpu = fs.read_cpu_v1(cpu_dir, acct_dir)
    elif version == 2 and mem_dir is not None:
        mem = fs.read_memory_v2(mem_dir)
        cpu = fs.read_cpu_v2(mem_dir)
    home = env.get("HOME", "/")
    size = free = None
    try:
        st = os.statvfs(home)
        size, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    except OSError:
        pass
    return SessionLimits(
        cgroup_version=version,
        memory_limit_bytes=mem.limit_bytes if mem else None,
        memory_usage_bytes=mem.usage_bytes if mem else None,
        memory_peak_bytes=mem.peak_bytes if mem else None,
        oom_kills=mem.oom_kills if mem else None,
        cpu_limit=cpu.quota_cpus if cpu else None,
        cpu_seconds=cpu.usage_seconds if cpu else None,
        throttled_seconds=cpu.throttled_seconds if cpu else None,
        env_mem_limit=env.get("MEM_LIMIT"),
        env_cpu_limit=env.get("CPU_LIMIT"),
        os_cpu_count=os.cpu_count(),
        home=home,
        home_size_bytes=size,
        home_free_bytes=free,
    )
