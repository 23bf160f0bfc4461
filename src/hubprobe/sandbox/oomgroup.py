"""Kubernetes' whole-container OOM kill (``memory.oom.group``) on cgroup v1, which lacks it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.sandbox.base import SandboxError
from hubprobe.sandbox.common import kill_cgroup

__all__ = ["OomGroupWatcher"]


class OomGroupWatcher:
    """Emulate ``memory.oom.group`` on v1: on an OOM event, kill the whole cgroup.

    Uses the v1 notification API (an eventfd registered on memory.oom_control
    through cgroup.event_control), so the rest of the session dies right after
    the kernel's kill, as on Kubernetes >= 1.28 with cgroup v2.
    """

    def __init__(self, group: Path) -> None:
        self._group = group
        self._stopping = False
        self._efd = os.eventfd(0)
        self._ofd = os.open(group / "memory.oom_control", os.O_RDONLY)
        (group / "cgroup.event_control").write_text(f"{self._efd} {self._ofd}")
        self._thread = threading.Thread(target=self._watch, name="oom-group", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        seen = self._oom_kills()
        while True:
            os.eventfd_read(self._efd)
            if self._stopping:
                return
            # The event comes when the cgroup hits its limit, before the kernel
            # has picked a victim: wait for its kill, then take the rest down,
            # so the OOM kill counter tells the truth as on cgroup v2.
            deadline = time.monotonic() + 2.0
            while self._oom_kills() == seen and time.monotonic() < deadline:
                time.sleep(0.001)
            if self._oom_kills() > seen:
                with contextlib.suppress(SandboxError, OSError):
                    kill_cgroup(self._group)
            seen = self._oom_kills()

    def _oom_kills(self) -> int:
        try:
            return fs.read_keyed(self._group / "memory.oom_control").get("oom_kill", 0)
        except OSError:
            return 0

    def stop(self) -> None:
        self._stopping = True
        os.eventfd_write(self._efd, 1)
        self._thread.join(timeout=2)
        os.close(self._ofd)
        os.close(self._efd)
