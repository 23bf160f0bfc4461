"""OCI backend: a real container made by runc, the runtime under a hub's pods.

Why runc: it is what containerd runs a Kubernetes pod with, Debian ships
it, and on a cgroup v1 machine it nests the container's cgroups under our
own (a relative ``cgroupsPath`` lands below the caller's cgroup in every
hierarchy), mounts the hierarchies read-only inside under the cgroup
namespace and brings ``lo`` up. crun 1.8 needed four workarounds on the
same machine (it refuses hybrid cgroup layouts, puts relative cgroups at
each hierarchy's root, mounts ``/sys/fs/cgroup`` writable for the
container's user, joins the devices cgroup before its mounts).

What the container is: :mod:`hubprobe.sandbox.oci_spec`. How it runs:
``runc run --keep`` in the foreground, so our child is runc itself, which
forwards signals, waits for the container and exits with its status (137
after an OOM kill); ``--keep`` leaves the stopped container and its
cgroups for the last reading, until teardown deletes it. runc needs the
host's ``/`` as a bundle folder: a bootstrap binds it there read-only in a
mount namespace of its own, which dies with runc, so the host never sees
the bind.

Every sandbox is written down before anything is made
(:mod:`hubprobe.sandbox.registry`) and watched
(:mod:`hubprobe.sandbox.watchdog`), so it dies with hubprobe even on
SIGKILL and a later run removes whatever a killed one left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.cgroup.locate import NoCgroup, locate
from hubprobe.sandbox import home, oci_spec, registry
from hubprobe.sandbox.base import (
    Availability,
    Backend,
    Fidelity,
    Limits,
    Reading,
    Sandbox,
    reading_from,
)
from hubprobe.sandbox.common import NotUsable, first_line, run_tool
from hubprobe.sandbox.oomgroup import OomGroupWatcher

__all__ = ["OciBackend", "OciSandbox"]

_TOOLS = ("runc", "unshare", "mount", "losetup", "mkfs.ext4")
_LOOP_CONTROL = Path("/dev/loop-control")

#: Binds the host's / onto the bundle's rootfs, read-only, in runc's own mount
#: namespace; then runc. Paths travel in variables, never spliced into the script.
_BOOT = r"""
set -e
mount --bind / "$HUBPROBE_ROOTFS"
mount -o remount,bind,ro "$HUBPROBE_ROOTFS"
unset HUBPROBE_ROOTFS
exec "$@"
"""


def _problem() -> NotUsable | None:
    if os.geteuid() != 0:
        return NotUsable(
            "runc needs root here (hubprobe runs rootful containers)",
            "run hubprobe as root (sudo), or use the systemd backend",
        )
    absent = [t for t in _TOOLS if shutil.which(t) is None]
    if absent:
        return NotUsable(
            f"commands not found: {', '.join(absent)}",
            "install them: apt-get install -y runc util-linux mount e2fsprogs",
        )
    if not _LOOP_CONTROL.exists():
        return NotUsable(
            f"{_LOOP_CONTROL} is missing, so the home image cannot be attached",
            "modprobe loop, or run on a machine with loop devices",
        )
    try:
        groups = locate(fs.own_cgroups(), fs.cgroup_mounts())
    except NoCgroup as exc:
        return NotUsable(exc.reason, exc.fix)
    if groups.version == 1 and groups.cpu is None:
        return NotUsable("no cgroup v1 cpu hierarchy", "mount the cpu controller")
    return None


class OciBackend(Backend):
    name = "oci"
    summary = "root; a runc container as a hub pod: uid 1000, no capabilities, own namespaces"
    fidelity = Fidelity()

    def check(self) -> Availability:
        problem = _problem()
        if problem is not None:
            return problem.availability(self.name)
        version = first_line(run_tool(["runc", "--version"]).stdout)
        return Availability(self.name, True, f"{version or 'runc'}; root, loop devices, cgroups")

    def create(
        self, limits: Limits, *, workdir: Path | None = None, expose: Sequence[Path] = ()
    ) -> OciSandbox:
        return OciSandbox(limits, workdir=workdir, expose=expose)


def _cgroup_dirs(name: str) -> tuple[list[Path], Path, Path, Path, int]:
    """Where runc puts the container's cgroups: below ours, in every hierarchy.

    Returns (all of them, memory, cpu, cpuacct, cgroup version).
    """
    mounts = fs.cgroup_mounts()
    own = fs.own_cgroups()
    groups = locate(own, mounts)
    if groups.version == 2:
        group = groups.memory / name
        return [group], group, group, group, 2
    every = []
    for mount in mounts:
        if mount.version != 1:
            continue
        key = next(iter(sorted(mount.controllers)))
        every.append(mount.mountpoint / own.get(key, "/").lstrip("/") / name)
    assert groups.cpu is not None
    acct = groups.cpuacct or groups.cpu
    return list(dict.fromkeys(every)), groups.memory / name, groups.cpu / name, acct / name, 1


def _host_mounts() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" - ", 1)[0].split()[4]
        # mountinfo escapes space, tab, newline and backslash as octal.
        points.append(point.encode().decode("unicode_escape"))
    return points


def _interpreter_paths() -> list[str]:
    """What the server's Python needs to read: its prefixes and the hubprobe package itself."""
    here = Path(__file__).resolve().parents[2]  # the folder holding the hubprobe package
    real = Path(sys.executable).resolve()
    return [str(p) for p in dict.fromkeys(
        [Path(sys.prefix), Path(sys.base_prefix), real.parent.parent, here]
    )]  # fmt: skip


class OciSandbox(Sandbox):
    backend = "oci"
    runs_as_root = False
    inherits_environment = False
    shares_host_files = False
    own_network = True

    def __init__(
        self, limits: Limits, *, workdir: Path | None = None, expose: Sequence[Path] = ()
    ) -> None:
        super().__init__(limits)
        self.name = f"hubprobe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._expose = [str(p) for p in expose]
        self._loop = ""
        self._watcher: OomGroupWatcher | None = None
        self._last: Reading | None = None
        state = registry.state_dir()
        self._runtime = ["runc", "--root", str(state / "runc")]
        every, self._memory, self._cpu, self._cpuacct, self._version = _cgroup_dirs(self.name)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=workdir))  # 0700
        self._image = self._workdir / "home.img"
        self._bundle = self._workdir / "bundle"
        self._masks = self._workdir / "masks"
        self._sockets = self._workdir / "sock"
        record = registry.Record(
            id=self.name, backend="oci", cgroups=[str(g) for g in every],
            image=str(self._image), workdir=str(self._workdir), runtime=self._runtime,
            container=self.name,
        )  # fmt: skip
        try:
            self._register(record)  # before anything else is made
            (state / "runc").mkdir(mode=0o700, parents=True, exist_ok=True)
            (self._bundle / "rootfs").mkdir(parents=True)
            self._sockets.mkdir(mode=0o700)
            os.chown(self._sockets, oci_spec.UID, oci_spec.GID)
            (self._workdir / "etc").mkdir()
            for name, text in oci_spec.identity_files().items():
                (self._workdir / "etc" / name).write_text(text)
                (self._workdir / "etc" / name).chmod(0o644)
            home.make_image(self._image, limits.storage_bytes, owner=(oci_spec.UID, oci_spec.GID))
            self._loop = home.attach(self._image)
        except BaseException:
            self._teardown()
            self._unregister()
            raise

    @property
    def home(self) -> str:
        return oci_spec.HOME

    @property
    def socket_dir(self) -> tuple[str, Path]:
        return oci_spec.SOCKET_DIR, self._sockets

    def net_namespace(self) -> Path | None:
        """The container's network namespace, once runc has made the container; else None."""
        done = run_tool([*self._runtime, "state", self.name])
        if done.returncode != 0:
            return None
        state = json.loads(done.stdout)
        if state.get("status") not in ("created", "running") or not state.get("pid"):
            return None
        return Path(f"/proc/{state['pid']}/ns/net")

    def _make_masks(self, expose: Sequence[str]) -> None:
        """Empty read-only stand-ins for the hidden folders, with their mount points made."""
        for top in oci_spec.HIDDEN:
            (self._masks / top.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for point in oci_spec.mount_points_to_make(expose, socket_dir=True):
            (self._masks / point.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for folder, _dirs, _files in os.walk(self._masks):
            Path(folder).chmod(0o755)  # jovyan walks through them

    def _popen(
        self, argv: Sequence[str], env: dict[str, str], cwd: str | None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        extra = kwargs.pop("expose", None)
        expose = [*_interpreter_paths(), *self._expose, *(extra if isinstance(extra, list) else [])]
        self._make_masks(expose)
        spec = oci_spec.build_spec(
            oci_spec.SpecInput(
                argv=argv, env=env, cwd=cwd or self.home,
                memory_bytes=self.limits.memory_bytes, cpu=self.limits.cpu,
                pids=self.limits.pids, loop_device=self._loop, socket_dir=str(self._sockets),
                masks=str(self._masks), host_mounts=_host_mounts(), expose=expose,
                identity=str(self._workdir / "etc"),
                oom_group_v2=self.limits.oom_group and self._version == 2,
            )
        )  # fmt: skip
        (self._bundle / "config.json").write_text(json.dumps(spec))
        if self.limits.oom_group and self._version == 1:
            # v1 has no memory.oom.group: the watcher kills the rest on the kernel's kill.
            # The group is made before runc, so that no kill can come before the watch.
            self._memory.mkdir(exist_ok=True)
            self._watcher = OomGroupWatcher(self._memory)
        env.setdefault("USER", "jovyan")
        boot_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        boot_env["HUBPROBE_ROOTFS"] = str(self._bundle / "rootfs")
        command = [
            "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _BOOT, "boot",
            *self._runtime, "run", "--keep", "--bundle", str(self._bundle), self.name,
        ]  # fmt: skip
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        # A new session: a Ctrl-C in the terminal reaches hubprobe, which tears down in order.
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            command, env=boot_env, start_new_session=True, **kwargs
        )

    def _read(self) -> Reading:
        try:
            if self._version == 1:
                mem = fs.read_memory_v1(self._memory)
                cpu = fs.read_cpu_v1(self._cpu, self._cpuacct)
            else:
                mem, cpu = fs.read_memory_v2(self._memory), fs.read_cpu_v2(self._memory)
        except FileNotFoundError:
            # Before runc has made the cgroups, or after teardown: the last we saw.
            if self._last is not None:
                return self._last
            return Reading(0, 0, self.limits.memory_bytes, 0, 0.0, 0.0, 0.0)
        self._last = reading_from(mem, cpu, self._last.peak_memory_bytes if self._last else 0)
        return self._last

    def reset_peak(self) -> bool:
        if self._version != 1:
            return False
        with contextlib.suppress(FileNotFoundError):
            (self._memory / "memory.max_usage_in_bytes").write_text("0")
            return True
        return False

    def _teardown(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._record is not None:
            registry.remove(self._record)  # every process, the container, cgroups, loop, files
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
