"""cgroup v1 backend: root, the v1 memory and cpu hierarchies (what CI has).

Child cgroups are made under this process's own memory, cpu and cpuacct
cgroups, so that whatever limits hubprobe itself lives under still hold.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.cgroup.fs import CgroupMount
from hubprobe.cgroup.locate import locate, v1_mount
from hubprobe.sandbox import home, namespace
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
from hubprobe.sandbox.common import kill_cgroup, remove_cgroup

__all__ = ["Cgroup1Backend", "Cgroup1Sandbox"]

CFS_PERIOD_US = 100_000
_TOOLS = ("unshare", "mount", "umount", "mkfs.ext4", "losetup", "setpriv")


class Cgroup1Backend(Backend):
    name = "cgroup1"
    summary = "root; child cgroups in the v1 memory and cpu hierarchies, cgroup + mount namespace"
    fidelity = Fidelity()

    def check(self) -> Availability:
        if os.geteuid() != 0:
            return Availability(
                self.name,
                False,
                "creating v1 cgroups and loop mounts needs root",
                "run hubprobe as root (sudo), or use the systemd, docker or podman backend",
            )
        mounts = fs.cgroup_mounts()
        missing = [c for c in ("memory", "cpu", "cpuacct") if v1_mount(mounts, c) is None]
        if missing:
            return Availability(
                self.name,
                False,
                f"no cgroup v1 hierarchy for {', '.join(missing)}",
                "on a cgroup v2 machine use the cgroup2 backend",
            )
        tools = [t for t in _TOOLS if shutil.which(t) is None]
        if tools:
            return Availability(
                self.name,
                False,
                f"missing commands: {', '.join(tools)}",
                "install util-linux, mount and e2fsprogs (apt-get install -y util-linux mount e2fsprogs)",
            )
        if not Path("/dev/loop-control").exists():
            return Availability(
                self.name,
                False,
                "no /dev/loop-control: loop devices are not available",
                "load the loop module (modprobe loop) or run in a privileged container",
            )
        return Availability(
            self.name, True, "root with cgroup v1 memory, cpu and cpuacct hierarchies"
        )

    def create(
        self, limits: Limits, *, workdir: Path | None = None, expose: Sequence[Path] = ()
    ) -> Cgroup1Sandbox:
        del expose  # the host's filesystem is all visible inside: nothing to expose
        return Cgroup1Sandbox(limits, workdir=workdir)


class Cgroup1Sandbox(Sandbox):
    backend = "cgroup1"

    def __init__(self, limits: Limits, *, workdir: Path | None = None) -> None:
        super().__init__(limits)
        name = f"hubprobe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        self._image = self._workdir / "home.img"
        self._home = self._workdir / "home"
        self._groups: dict[str, Path] = {}  # controller -> our cgroup dir
        self._remount: list[CgroupMount] = []
        self._watcher: _OomGroupWatcher | None = None
        try:
            self._make_cgroups(name)
            self._home.mkdir()
            home.make_image(self._image, limits.storage_bytes)
            if limits.oom_group:
                self._watcher = _OomGroupWatcher(self._groups["memory"])
        except BaseException:
            self._teardown()
            raise

    def _make_cgroups(self, name: str) -> None:
        mounts = fs.cgroup_mounts()
        own = locate(fs.own_cgroups(), mounts, version=1)
        parents = {"memory": own.memory, "cpu": own.cpu, "cpuacct": own.cpuacct}
        for controller, parent in parents.items():
            mount = v1_mount(mounts, controller)
            if mount is None or parent is None:
                raise SandboxError(
                    f"no cgroup v1 hierarchy for {controller}; try `hubprobe doctor`"
                )
            if any(m.mountpoint == mount.mountpoint for m in self._remount):
                self._groups[controller] = self._groups[
                    next(iter(mount.controllers & set(self._groups)))
                ]
                continue
            group = parent / name
            group.mkdir()
            self._groups[controller] = group
            self._remount.append(mount)
        mem = self._groups["memory"]
        limit = str(self.limits.memory_bytes)
        (mem / "memory.limit_in_bytes").write_text(limit)
        # memory+swap equal to memory: no swap, like `docker --memory-swap` = `--memory`.
        if (mem / "memory.memsw.limit_in_bytes").exists():
            (mem / "memory.memsw.limit_in_bytes").write_text(limit)
        cpu = self._groups["cpu"]
        (cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(round(self.limits.cpu * CFS_PERIOD_US)))

    @property
    def home(self) -> str:
        return str(self._home)

    def _popen(
        self, argv: Sequence[str], env: dict[str, str], cwd: str | None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        procs = [g / "cgroup.procs" for g in dict.fromkeys(self._groups.values())]
        env.update(namespace.bootstrap_env(procs, self._remount, self._image, cwd or self.home))
        # A new session: a Ctrl-C in the terminal reaches hubprobe, which tears down in order.
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            namespace.bootstrap_argv(argv), env=env, start_new_session=True, **kwargs
        )

    def _read(self) -> Reading:
        mem = fs.read_memory_v1(self._groups["memory"])
        return reading_from(mem, fs.read_cpu_v1(self._groups["cpu"], self._groups["cpuacct"]))

    def reset_peak(self) -> bool:
        # v1 resets the high-water mark on any write to it.
        (self._groups["memory"] / "memory.max_usage_in_bytes").write_text("0")
        return True

    def _teardown(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        groups = list(dict.fromkeys(self._groups.values()))
        for group in groups:
            kill_cgroup(group)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for group in groups:
            remove_cgroup(group)
        self._groups.clear()
        home.release(self._workdir, self._image)


class _OomGroupWatcher:
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
