"""cgroup v1 backend: root, the v1 memory and cpu hierarchies (what CI has).

Child cgroups are made under this process's own memory, cpu and cpuacct
cgroups, so that whatever limits hubprobe itself lives under still hold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.cgroup.fs import CgroupMount
from hubprobe.cgroup.locate import locate, v1_mount
from hubprobe.sandbox import home, namespace, registry
from hubprobe.sandbox.base import (
    CFS_PERIOD_US,
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
from hubprobe.sandbox.oomgroup import OomGroupWatcher

__all__ = ["Cgroup1Backend", "Cgroup1Sandbox"]

_TOOLS = ("unshare", "mount", "umount", "mkfs.ext4", "losetup", "setpriv")


class Cgroup1Backend(Backend):
    name = "cgroup1"
    summary = "root; child cgroups in the v1 memory and cpu hierarchies, cgroup + mount namespace"
    fidelity = Fidelity(contained=False)  # an imitation: namespaces by hand, root inside

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
        self._watcher: OomGroupWatcher | None = None
        try:
            own = locate(fs.own_cgroups(), fs.cgroup_mounts(), version=1)
            planned = [str(g / name) for g in (own.memory, own.cpu, own.cpuacct) if g is not None]
            self._register(
                registry.Record(
                    id=name, backend="cgroup1", cgroups=list(dict.fromkeys(planned)),
                    image=str(self._image), workdir=str(self._workdir),
                )
            )  # fmt: skip
            self._make_cgroups(name)
            self._home.mkdir()
            home.make_image(self._image, limits.storage_bytes)
            if limits.oom_group:
                self._watcher = OomGroupWatcher(self._groups["memory"])
        except BaseException:
            self._teardown()
            self._unregister()
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
