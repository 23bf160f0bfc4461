"""What several backends share: why a backend cannot work, helper commands, cgroup teardown."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.sandbox.base import Availability, SandboxError

__all__ = [
    "NotUsable",
    "first_line",
    "kill_cgroup",
    "namespace_tools_missing",
    "remove_cgroup",
    "run_tool",
]

_LOOP_CONTROL = Path("/dev/loop-control")
_NAMESPACE_TOOLS = ("unshare", "mount", "umount", "mkfs.ext4", "losetup")


class NotUsable(SandboxError):
    """Why a backend cannot work here, and what to do; ``check()`` reports it."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}; {fix}")
        self.reason = reason
        self.fix = fix

    def availability(self, backend: str) -> Availability:
        return Availability(backend, False, self.reason, self.fix)


def run_tool(argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a helper command (systemctl, docker, losetup); missing or hung reads as failed."""
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, check=False, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def namespace_tools_missing(
    tools: Sequence[str] = _NAMESPACE_TOOLS, loop_control: Path | None = None
) -> NotUsable | None:
    """What the namespace bootstrap and the loop-mounted home need from the machine."""
    loop_control = loop_control or _LOOP_CONTROL
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        return NotUsable(
            f"commands not found: {', '.join(absent)}",
            "install them: apt-get install -y util-linux mount e2fsprogs",
        )
    if not loop_control.exists():
        return NotUsable(
            f"{loop_control} is missing, so the home image cannot be loop-mounted",
            "modprobe loop, or run the container --privileged",
        )
    return None


def kill_cgroup(group: Path, timeout: float = 5.0) -> None:
    """SIGKILL every process in ``group`` until it stays empty (it may be forking)."""
    deadline = time.monotonic() + timeout
    while pids := fs.pids_in(group):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise SandboxError(f"processes {pids} in {group} survive SIGKILL")
        time.sleep(0.002)


def remove_cgroup(group: Path, timeout: float = 3.0) -> None:
    """rmdir a cgroup; the kernel says EBUSY for a moment after its last process dies."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
