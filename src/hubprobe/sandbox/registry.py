"""A record of every live sandbox, and the one way to remove what a sandbox made.

Before a sandbox makes anything, it writes down what it will make (cgroups,
the home's image and its loop device, a runtime's container, the work
folder) in a small JSON file in hubprobe's state folder. Teardown removes
exactly that, through :func:`remove`, and deletes the record. If hubprobe
is killed (SIGKILL, a crash, a power cut of the terminal), its watchdog or
else the next run of hubprobe, or ``hubprobe doctor``, finds records whose
owner is gone and removes what they list, saying what it removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hubprobe.files import write_atomic
from hubprobe.sandbox.common import kill_cgroup, remove_cgroup
from hubprobe.sandbox.home import loop_devices_for

__all__ = ["Record", "forget", "orphans", "reap_orphans", "remove", "save", "state_dir"]


def state_dir() -> Path:
    """Where records (and the OCI runtime's state) live: root's /run, else a private tmp folder."""
    override = os.environ.get("HUBPROBE_STATE_DIR")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/run/hubprobe")
    return Path(tempfile.gettempdir()) / f"hubprobe-state-{os.geteuid()}"


def _records() -> Path:
    path = state_dir() / "sandboxes"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot): a pid reused later has another."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()[19]


@dataclasses.dataclass
class Record:
    """What one sandbox made, so that anyone can take it down."""

    id: str
    backend: str
    owner_pid: int = dataclasses.field(default_factory=os.getpid)
    owner_start: str | None = dataclasses.field(default_factory=lambda: _start_time(os.getpid()))
    cgroups: list[str] = dataclasses.field(default_factory=list)
    image: str | None = None
    workdir: str | None = None
    #: The OCI runtime's command (with its --root) and the container's id.
    runtime: list[str] = dataclasses.field(default_factory=list)
    container: str | None = None

    @property
    def path(self) -> Path:
        return _records() / f"{self.id}.json"

    def owner_alive(self) -> bool:
        return _start_time(self.owner_pid) == self.owner_start


def save(record: Record) -> Path:
    write_atomic(record.path, json.dumps(dataclasses.asdict(record), indent=1) + "\n")
    return record.path


def forget(record: Record) -> None:
    record.path.unlink(missing_ok=True)


def load(path: Path) -> Record | None:
    try:
        data = json.loads(path.read_text())
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove(record: Record) -> list[str]:
    """Take down everything the record lists; returns what was still there and removed.

    Idempotent and in the one safe order: every process first (a process
    holds the mounts and the loop device), then the runtime's container,
    the cgroups, the loop device, the files.
    """
    removed: list[str] = []
    groups = [Path(g) for g in record.cgroups]
    for group in groups:
        if group.is_dir() and (group / "cgroup.procs").exists():
            with contextlib.suppress(OSError):
                if (group / "cgroup.procs").read_text().split():
                    removed.append(f"processes in {group}")
            kill_cgroup(group)
    if record.container and record.runtime:
        done = subprocess.run(
            [*record.runtime, "delete", "--force", record.container],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            removed.append(f"container {record.container}")
    for group in groups:
        if group.is_dir():
            remove_cgroup(group)
            removed.append(f"cgroup {group}")
    if record.image:
        for dev in loop_devices_for(Path(record.image)):
            subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
            removed.append(f"loop device {dev}")
    if record.workdir and Path(record.workdir).exists():
        shutil.rmtree(record.workdir, ignore_errors=True)
        removed.append(f"folder {record.workdir}")
    return removed


def orphans() -> list[Record]:
    """Records whose hubprobe is gone (killed, or its machine's session ended)."""
    found = []
    for path in sorted(_records().glob("*.json")):
        record = load(path)
        if record is None:
            path.unlink(missing_ok=True)  # half-written by a killed run: nothing to go by
        elif not record.owner_alive():
            found.append(record)
    return found


def reap_orphans() -> list[str]:
    """Remove what killed hubprobes left; one line per sandbox that still had something."""
    lines = []
    for record in orphans():
        removed = remove(record)
        forget(record)
        if removed:
            lines.append(
                f"removed what a killed hubprobe (pid {record.owner_pid}) left: "
                + ", ".join(removed)
            )
    return lines
