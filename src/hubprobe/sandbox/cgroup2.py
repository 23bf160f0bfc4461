"""cgroup v2 backend: root, a v2 hierarchy that offers the memory and cpu controllers.

The sandbox is one v2 cgroup with ``memory.max``, ``memory.swap.max=0`` and
``cpu.max`` (and ``memory.oom.group=1`` for profiles that model Kubernetes >=
1.28), entered through the same cgroup + mount namespace bootstrap as the v1
backend, so that inside, ``/sys/fs/cgroup/memory.max`` and ``cpu.max`` are the
sandbox's own.

Where the sandbox goes follows cgroup v2's "no internal processes" rule: a
cgroup that holds processes cannot hand controllers to child cgroups (the
hierarchy's root is exempt). So it is made under our own cgroup when that is
the root (or holds no process), else beside our own cgroup, under a parent
that already hands out memory and cpu -- the shape of a delegated subtree,
where processes sit in leaves. The decisions are small functions over paths,
so fixture trees test them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from hubprobe.cgroup import fs
from hubprobe.cgroup.fs import CgroupMount
from hubprobe.cgroup.locate import NoCgroup, locate
from hubprobe.sandbox import home, namespace
from hubprobe.sandbox.base import (
    CFS_PERIOD_US,
    MIN_CFS_QUOTA_US,
    Availability,
    Backend,
    Fidelity,
    Limits,
    Reading,
    Sandbox,
    SandboxError,
    reading_from,
)
from hubprobe.sandbox.common import NotUsable, kill_cgroup, namespace_tools_missing, remove_cgroup

__all__ = [
    "Cgroup2Backend",
    "Cgroup2Sandbox",
    "Place",
    "choose_parent",
    "find_own_group",
    "find_place",
    "write_limits",
]

NEEDED = ("memory", "cpu")
_PROC = Path("/proc")


@dataclasses.dataclass(frozen=True)
class Place:
    """Where sandboxes go: under ``parent``, after enabling ``enable`` there."""

    mount: CgroupMount
    parent: Path
    enable: tuple[str, ...]


def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except FileNotFoundError:
        return set()


def find_own_group(
    mounts: Sequence[CgroupMount], own: Mapping[str, str]
) -> tuple[CgroupMount, Path]:
    """The v2 mount and our own cgroup's directory in it ("0::/path" in /proc/self/cgroup)."""
    try:
        groups = locate(own, mounts, version=2)
    except NoCgroup as exc:
        raise NotUsable(exc.reason, exc.fix) from None
    return groups.mount, groups.memory


def choose_parent(own: Path, top: Path) -> tuple[Path, tuple[str, ...]]:
    """The cgroup to make sandboxes under, and the controllers to enable in it.

    ``own`` is our cgroup, ``top`` the root of the mounted hierarchy as we see it.
    """
    missing = [c for c in NEEDED if c not in _words(own / "cgroup.controllers")]
    if missing:
        raise NotUsable(
            f"the cgroup v2 hierarchy offers no {' or '.join(missing)} controller at {own}"
            " (on a hybrid machine they belong to the cgroup v1 hierarchies)",
            "use the cgroup1 backend, or boot with systemd.unified_cgroup_hierarchy=1",
        )
    enable = tuple(c for c in NEEDED if c not in _words(own / "cgroup.subtree_control"))
    # The hierarchy's root has no cgroup.type and may hold processes and children alike.
    is_root = not (own / "cgroup.type").exists()
    if not enable or is_root or not fs.pids_in(own):
        parent = own
    elif own != top:
        # Our cgroup got memory and cpu from its parent's subtree_control, so
        # that parent hands them out and holds no process: go beside ourselves.
        parent, enable = own.parent, ()
    else:
        pids = fs.pids_in(own)
        raise NotUsable(
            f"our cgroup {own} holds processes ({len(pids)}, ours among them) and does not"
            f" enable {' and '.join(enable)} for child cgroups; cgroup v2 forbids that"
            " ('no internal processes' rule), so no sandbox cgroup can get limits here",
            f"as root, move every process of {own} into a leaf first (mkdir {own}/init; write"
            f" each pid of {own}/cgroup.procs to {own}/init/cgroup.procs), then run"
            f" `echo '+memory +cpu' > {own}/cgroup.subtree_control` and start hubprobe from"
            " that leaf; or use the cgroup1 or docker backend",
        )
    if not os.access(parent, os.W_OK) or (
        enable and not os.access(parent / "cgroup.subtree_control", os.W_OK)
    ):
        raise NotUsable(
            f"{parent} is not writable here (a read-only cgroup mount, or not delegated to us)",
            "run as root with a writable cgroup2 mount (in a container: --privileged with its"
            " own cgroup namespace), or use the cgroup1 or docker backend",
        )
    return parent, enable


def find_place(proc: Path = _PROC) -> Place:
    mounts = fs.cgroup_mounts(proc)
    mount, own = find_own_group(mounts, fs.own_cgroups(proc))
    parent, enable = choose_parent(own, mount.mountpoint)
    return Place(mount, parent, enable)


def write_limits(group: Path, limits: Limits) -> None:
    """The profile's limits as cgroup v2 files in ``group``."""
    (group / "memory.max").write_text(str(limits.memory_bytes))
    # Present only where the kernel accounts swap; without it there is no swap to limit.
    if (group / "memory.swap.max").exists():
        (group / "memory.swap.max").write_text("0")
    quota = max(MIN_CFS_QUOTA_US, round(limits.cpu * CFS_PERIOD_US))
    (group / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
    if limits.oom_group:
        (group / "memory.oom.group").write_text("1")


class Cgroup2Backend(Backend):
    name = "cgroup2"
    summary = "root; one v2 cgroup (memory.max, swap 0, cpu.max), cgroup + mount namespace"
    fidelity = Fidelity(contained=False)  # an imitation: namespaces by hand, root inside

    def __init__(self, proc: Path = _PROC) -> None:
        self._proc = proc

    def check(self) -> Availability:
        if os.geteuid() != 0:
            return Availability(
                self.name,
                False,
                "the cgroup + mount namespace and the loop-mounted home need root",
                "run hubprobe as root (sudo), or use the systemd, docker or podman backend",
            )
        try:
            place = find_place(self._proc)
        except NotUsable as exc:
            return exc.availability(self.name)
        problem = namespace_tools_missing()
        if problem is not None:
            return problem.availability(self.name)
        todo = f"; will enable {' and '.join(place.enable)} there" if place.enable else ""
        return Availability(self.name, True, f"cgroup v2 sandboxes under {place.parent}{todo}")

    def create(
        self, limits: Limits, *, workdir: Path | None = None, expose: Sequence[Path] = ()
    ) -> Cgroup2Sandbox:
        del expose  # the host's filesystem is all visible inside: nothing to expose
        return Cgroup2Sandbox(limits, find_place(self._proc), workdir=workdir)


class Cgroup2Sandbox(Sandbox):
    backend = "cgroup2"

    def __init__(self, limits: Limits, place: Place, *, workdir: Path | None = None) -> None:
        super().__init__(limits)
        name = f"hubprobe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._mount = place.mount
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        self._image = self._workdir / "home.img"
        self._home = self._workdir / "home"
        self._group: Path | None = None
        self._peak_seen = 0
        try:
            if place.enable:
                _enable(place.parent, place.enable)
            group = place.parent / name
            group.mkdir()
            self._group = group
            write_limits(group, limits)
            self._home.mkdir()
            home.make_image(self._image, limits.storage_bytes)
        except BaseException:
            self._teardown()
            raise

    @property
    def home(self) -> str:
        return str(self._home)

    @property
    def group(self) -> Path:
        if self._group is None:
            raise SandboxError("this sandbox's cgroup is gone")
        return self._group

    def _popen(
        self, argv: Sequence[str], env: dict[str, str], cwd: str | None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        procs = [self.group / "cgroup.procs"]
        env.update(namespace.bootstrap_env(procs, [self._mount], self._image, cwd or self.home))
        # A new session: a Ctrl-C in the terminal reaches hubprobe, which tears down in order.
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            namespace.bootstrap_argv(argv), env=env, start_new_session=True, **kwargs
        )

    def _read(self) -> Reading:
        mem = fs.read_memory_v2(self.group)
        self._peak_seen = max(self._peak_seen, mem.usage_bytes)
        return reading_from(mem, fs.read_cpu_v2(self.group), self._peak_seen)

    def _teardown(self) -> None:
        group = self._group
        if group is not None:
            # cgroup.kill (Linux >= 5.14) kills the whole tree at once, forks included;
            # kill_cgroup then waits for it to empty (and is the fallback without it).
            if (group / "cgroup.kill").exists():
                (group / "cgroup.kill").write_text("1")
            kill_cgroup(group)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if group is not None:
            remove_cgroup(group)
            self._group = None
        # Controllers enabled in the parent stay enabled: other sandboxes may use them.
        home.release(self._workdir, self._image)


def _enable(parent: Path, controllers: Sequence[str]) -> None:
    try:
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))
    except OSError as exc:
        msg = (
            f"cannot enable {', '.join(controllers)} in {parent}/cgroup.subtree_control:"
            f" {exc.strerror}; see `hubprobe doctor`"
        )
        raise SandboxError(msg) from exc
