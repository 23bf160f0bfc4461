"""Read cgroup v1 and v2 files: limits, usage, peak, OOM kills, CPU time.

Pure readers over a directory, so they serve the sandbox backends, ``hubprobe
limits`` (inside a sandbox or in a terminal on a real hub) and unit tests
against fixture trees alike.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

__all__ = [
    "UNLIMITED",
    "CgroupMount",
    "CpuReading",
    "MemoryReading",
    "cgroup_mounts",
    "is_root",
    "own_cgroups",
    "parse_mounts",
    "parse_proc_cgroup",
    "pids_in",
    "read_cpu_v1",
    "read_cpu_v2",
    "read_int",
    "read_keyed",
    "read_memory_v1",
    "read_memory_v2",
]

#: cgroup v1 reports "no limit" as the largest page-aligned 63-bit number;
#: anything this large is no limit at all.
UNLIMITED = 1 << 62

_GENERIC_OPTIONS = frozenset(
    [
        "rw",
        "ro",
        "nosuid",
        "suid",
        "nodev",
        "dev",
        "noexec",
        "exec",
        "relatime",
        "noatime",
        "strictatime",
        "nodiratime",
        "lazytime",
        "sync",
        "async",
        "xattr",
        "clone_children",
        "noprefix",
        "cpuset_v2_mode",
    ]
)


@dataclasses.dataclass(frozen=True)
class CgroupMount:
    mountpoint: Path
    version: int  # 1 or 2
    controllers: frozenset[str]
    options: str  # the controller options to mount the same hierarchy again


@dataclasses.dataclass(frozen=True)
class MemoryReading:
    usage_bytes: int
    peak_bytes: int | None
    limit_bytes: int | None
    oom_kills: int
    #: Page cache the kernel would reclaim first (v1 total_inactive_file, v2 inactive_file);
    #: None where the stat file does not say.
    inactive_file_bytes: int | None = None

    @property
    def working_set_bytes(self) -> int:
        """Usage minus inactive file cache, as the kubelet and cAdvisor judge a container."""
        if self.inactive_file_bytes is None:
            return self.usage_bytes
        return max(self.usage_bytes - self.inactive_file_bytes, 0)


@dataclasses.dataclass(frozen=True)
class CpuReading:
    quota_cpus: float | None  # CPU-seconds per second; None = no quota
    usage_seconds: float | None
    throttled_seconds: float | None


def read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def read_keyed(path: Path) -> dict[str, int]:
    """Files of ``key value`` lines: memory.stat, cpu.stat, memory.events, oom_control."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _limit(value: int) -> int | None:
    return None if value >= UNLIMITED else value


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` -> controller -> path; the v2 entry is keyed ``""``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1], parts[2]
        if controllers == "":
            out[""] = path
        for name in controllers.split(","):
            if name:
                out[name.removeprefix("name=")] = path
    return out


def parse_mounts(text: str) -> list[CgroupMount]:
    """cgroup mounts in ``/proc/self/mounts`` format."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] not in ("cgroup", "cgroup2"):
            continue
        mountpoint = Path(fields[1].replace("\\040", " "))
        if fields[2] == "cgroup2":
            mounts.append(CgroupMount(mountpoint, 2, frozenset(), ""))
            continue
        # Keep controllers and the name= of named hierarchies; drop generic
        # mount flags (nosuid, relatime, xattr, ...) and key=value options.
        keep = [
            o
            for o in fields[3].split(",")
            if o.startswith("name=") or ("=" not in o and o not in _GENERIC_OPTIONS)
        ]
        controllers = frozenset(o.removeprefix("name=") for o in keep)
        mounts.append(CgroupMount(mountpoint, 1, controllers, ",".join(keep)))
    return mounts


def cgroup_mounts(proc: Path = Path("/proc")) -> list[CgroupMount]:
    return parse_mounts((proc / "self" / "mounts").read_text())


def own_cgroups(proc: Path = Path("/proc"), pid: int | str = "self") -> dict[str, str]:
    return parse_proc_cgroup((proc / str(pid) / "cgroup").read_text())


def _stat(path: Path) -> dict[str, int]:
    try:
        return read_keyed(path)
    except OSError:
        return {}


def read_memory_v1(group: Path) -> MemoryReading:
    oom = read_keyed(group / "memory.oom_control")
    return MemoryReading(
        usage_bytes=read_int(group / "memory.usage_in_bytes"),
        peak_bytes=read_int(group / "memory.max_usage_in_bytes"),
        limit_bytes=_limit(read_int(group / "memory.limit_in_bytes")),
        oom_kills=oom.get("oom_kill", 0),
        # total_: this cgroup and its children, as usage_in_bytes counts them.
        inactive_file_bytes=_stat(group / "memory.stat").get("total_inactive_file"),
    )


def read_memory_v2(group: Path) -> MemoryReading:
    peak_file = group / "memory.peak"  # Linux >= 5.19
    limit_text = (group / "memory.max").read_text().strip()
    return MemoryReading(
        usage_bytes=read_int(group / "memory.current"),
        peak_bytes=read_int(peak_file) if peak_file.exists() else None,
        limit_bytes=None if limit_text == "max" else int(limit_text),
        oom_kills=read_keyed(group / "memory.events").get("oom_kill", 0),
        inactive_file_bytes=_stat(group / "memory.stat").get("inactive_file"),
    )


def read_cpu_v1(cpu_group: Path, cpuacct_group: Path | None = None) -> CpuReading:
    quota = read_int(cpu_group / "cpu.cfs_quota_us")
    period = read_int(cpu_group / "cpu.cfs_period_us")
    stat = read_keyed(cpu_group / "cpu.stat")
    usage: float | None = None
    acct = cpuacct_group if cpuacct_group is not None else cpu_group
    if (acct / "cpuacct.usage").exists():
        usage = read_int(acct / "cpuacct.usage") / 1e9
    return CpuReading(
        quota_cpus=None if quota < 0 else quota / period,
        usage_seconds=usage,
        throttled_seconds=stat["throttled_time"] / 1e9 if "throttled_time" in stat else None,
    )


def read_cpu_v2(group: Path) -> CpuReading:
    quota_cpus: float | None = None
    cpu_max = group / "cpu.max"
    if cpu_max.exists():
        quota, period = cpu_max.read_text().split()
        quota_cpus = None if quota == "max" else int(quota) / int(period)
    stat = read_keyed(group / "cpu.stat")
    return CpuReading(
        quota_cpus=quota_cpus,
        usage_seconds=stat["usage_usec"] / 1e6 if "usage_usec" in stat else None,
        throttled_seconds=stat["throttled_usec"] / 1e6 if "throttled_usec" in stat else None,
    )


def pids_in(group: Path) -> list[int]:
    """Processes in a cgroup (v1 or v2), empty if it is gone."""
    try:
        text = (group / "cgroup.procs").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def is_root() -> bool:
    return os.geteuid() == 0
