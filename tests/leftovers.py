"""What a sandbox could leave behind on this machine, counted.

Used around every real-sandbox test: the counts after must equal the counts
before (no cgroup, mount, loop device or process of ours survives).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

from hubprobe.cgroup import fs


@dataclasses.dataclass(frozen=True)
class Leftovers:
    cgroups: tuple[str, ...]
    loop_devices: tuple[str, ...]
    mounts: tuple[str, ...]
    processes: tuple[int, ...]
    workdirs: tuple[str, ...]
    containers: tuple[str, ...] = ()
    records: tuple[str, ...] = ()


_CREATOR = re.compile(r"hubprobe-(\d+)-")


def _ours(name: str) -> bool:
    """Skip what another live process is using right now (a concurrent run).

    Names carry the creating pid; what this process made, or what a process
    that has ended left, counts.
    """
    m = _CREATOR.search(name)
    if m is None:
        return True
    pid = int(m.group(1))
    return pid == os.getpid() or not Path(f"/proc/{pid}").exists()


def _hubprobe_cgroups() -> list[str]:
    found = []
    own = fs.own_cgroups()
    for mount in fs.cgroup_mounts():
        if mount.version == 1:
            key = next(iter(mount.controllers))
            base = mount.mountpoint / own.get(key, "/").lstrip("/")
        else:
            base = mount.mountpoint / own.get("", "/").lstrip("/")
        found += [str(p) for p in base.glob("hubprobe-*") if p.is_dir()]
    return found


def _loop_devices() -> list[str]:
    out = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            out.append(f"{backing.parent.parent.name}:{backing.read_text().strip()}")
        except OSError:
            continue
    return out


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _containers() -> list[str]:
    """runc's containers under hubprobe's state folder (ours carry the creating pid)."""
    from hubprobe.sandbox.registry import state_dir

    root = state_dir() / "runc"
    if not root.is_dir() or shutil.which("runc") is None:
        return []
    listed = subprocess.run(
        ["runc", "--root", str(root), "list", "-q"], capture_output=True, text=True, check=False
    )
    return listed.stdout.split()


def _records() -> list[str]:
    from hubprobe.sandbox.registry import state_dir

    return [p.stem for p in (state_dir() / "sandboxes").glob("*.json")]


def count(tmp_root: Path | None = None) -> Leftovers:
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if "hubprobe" in line.split()[1] or line.split()[0].startswith("/dev/loop")
    ]
    tmp = Path(tmp_root or os.environ.get("TMPDIR", "/tmp"))
    return Leftovers(
        cgroups=tuple(sorted(filter(_ours, _hubprobe_cgroups()))),
        loop_devices=tuple(sorted(filter(_ours, _loop_devices()))),
        mounts=tuple(sorted(filter(_ours, mounts))),
        processes=tuple(sorted(_descendants(os.getpid()))),
        workdirs=tuple(sorted(filter(_ours, (str(p) for p in tmp.glob("hubprobe-*"))))),
        containers=tuple(sorted(filter(_ours, _containers()))),
        records=tuple(sorted(filter(_ours, _records()))),
    )


def processes_running(*argv: str) -> list[int]:
    """Pids of the processes whose command line starts with ``argv`` (a marker command)."""
    want = [a.encode() for a in argv]
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().split(b"\0")[: len(want)] == want:
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found
