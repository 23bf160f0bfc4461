"""The one small interface every sandbox backend implements.

A backend says whether it works on this machine (and if not, why and what to
do), and creates a :class:`Sandbox`: a place where one command tree runs under
a hub profile's limits, can be read at any moment, and is torn down leaving
nothing behind.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Self

from hubprobe import interrupts
from hubprobe.errors import ExitCode, HubprobeError, UsageError

if TYPE_CHECKING:
    from hubprobe.cgroup.fs import CpuReading, MemoryReading
    from hubprobe.profiles import Profile
    from hubprobe.sandbox.registry import Record
    from hubprobe.sandbox.watchdog import Watchdog

__all__ = [
    "Availability",
    "Backend",
    "Fidelity",
    "Limits",
    "Reading",
    "Sandbox",
    "SandboxError",
    "reading_from",
]


class SandboxError(HubprobeError):
    """A sandbox could not be created or used; the message says what to do."""

    exit_code = ExitCode.NO_SANDBOX


@dataclasses.dataclass(frozen=True)
class Limits:
    """The limits a sandbox enforces, taken from a hub profile."""

    memory_bytes: int
    cpu: float
    storage_bytes: int
    #: Processes and threads the session may have at once (a fork bomb stops there).
    pids: int = 1024
    #: True models Kubernetes >= 1.28 on cgroup v2 (``memory.oom.group``):
    #: one OOM kill takes down every process of the session.
    oom_group: bool = False
    #: Variables JupyterHub's spawner exports (MEM_LIMIT, CPU_LIMIT, ...).
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_profile(cls, profile: Profile) -> Limits:
        return cls(
            memory_bytes=profile.memory_limit_bytes,
            cpu=profile.cpu_limit,
            storage_bytes=profile.storage_bytes,
            pids=profile.pids_limit,
            oom_group=profile.oom_scope == "container",
            env=profile.env(),
        )

    def host_warnings(self, meminfo: Path = Path("/proc/meminfo")) -> list[str]:
        """Refuse what the kernel cannot honour; say what it can hold but not enforce.

        A CPU quota below 1 ms per 100 ms period is refused by the kernel; a
        limit above the machine's cores or RAM is accepted but never binds.
        """
        if self.cpu * CFS_PERIOD_US < MIN_CFS_QUOTA_US:
            raise UsageError(
                f"a CPU limit of {self.cpu:g} is below the kernel's smallest quota"
                f" ({MIN_CFS_QUOTA_US / CFS_PERIOD_US:g} CPU)",
                "raise cpu.limit in the profile to 0.01 or more",
            )
        warnings = []
        cores = os.cpu_count() or 1
        if self.cpu > cores:
            warnings.append(
                f"the CPU limit ({self.cpu:g}) is more than this machine's {cores} cores: it"
                f" cannot bind here, and parallel work runs at most {cores} wide"
            )
        ram = _mem_total(meminfo)
        if ram is not None and self.memory_bytes > ram:
            warnings.append(
                f"the memory limit ({self.memory_bytes >> 20} MiB) is above this machine's RAM"
                f" ({ram >> 20} MiB): it cannot bind here; the machine would run out first"
            )
        return warnings


CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000


def _mem_total(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the sandbox's cgroup says at one moment."""

    memory_bytes: int
    peak_memory_bytes: int
    memory_limit_bytes: int | None
    oom_kills: int
    cpu_seconds: float
    throttled_seconds: float
    wall_seconds: float
    #: Usage minus inactive file cache (what Kubernetes judges a container by); a backend
    #: that cannot read the cache leaves it equal to ``memory_bytes`` (-1: not given).
    working_set_bytes: int = -1

    def __post_init__(self) -> None:
        if self.working_set_bytes < 0:
            object.__setattr__(self, "working_set_bytes", self.memory_bytes)


def reading_from(mem: MemoryReading, cpu: CpuReading, peak_seen: int = 0) -> Reading:
    """A :class:`Reading` from cgroup.fs readings (wall time is filled in by the sandbox).

    ``peak_seen`` stands in for the peak where the kernel keeps none (v2
    before Linux 5.19): the largest usage read so far, a lower bound.
    """
    return Reading(
        memory_bytes=mem.usage_bytes,
        peak_memory_bytes=mem.peak_bytes if mem.peak_bytes is not None else peak_seen,
        memory_limit_bytes=mem.limit_bytes,
        oom_kills=mem.oom_kills,
        cpu_seconds=cpu.usage_seconds or 0.0,
        throttled_seconds=cpu.throttled_seconds or 0.0,
        wall_seconds=0.0,
        working_set_bytes=mem.working_set_bytes,
    )


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """How closely a backend imitates a hub's container.

    Anything less than all True is said out loud when the backend is chosen:
    the guide's claims depend on each of these.
    """

    enforces_limits: bool = True
    own_cgroup_view: bool = True
    private_home: bool = True
    #: A real container: jovyan, no capabilities, its own namespaces, read-only host.
    contained: bool = True

    def gaps(self) -> list[str]:
        gaps = []
        if not self.contained:
            gaps.append(
                "code inside runs as the host's root (less two capabilities) and shares the"
                " host's network, processes and files: use it only for notebooks you trust"
            )
        if not self.enforces_limits:
            gaps.append("it measures limits but does not set them")
        if not self.own_cgroup_view:
            gaps.append("processes inside see the host's cgroup files, not the sandbox's limits")
        if not self.private_home:
            gaps.append("there is no private home of the profile's storage size")
        return gaps


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a backend works here; if not, why and what to do."""

    backend: str
    usable: bool
    reason: str
    fix: str = ""


#: What a contained command gets of our environment: the locale, the search path,
#: and the OpenBLAS settings this kind of machine needs (see the env notes);
#: never a token or a secret of the caller.
PASSED_THROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)


class Sandbox(abc.ABC):
    """One command tree under limits. Use as a context manager."""

    backend: ClassVar[str]
    #: Whether the command runs as root (the imitation backends) or as jovyan.
    runs_as_root: ClassVar[bool] = True
    #: Whether the command gets our whole environment, or only PASSED_THROUGH.
    inherits_environment: ClassVar[bool] = True
    #: Whether the command sees the host's files where they are (then ``expose``
    #: needs nothing); a container gets ``expose`` in ``_popen``'s keywords.
    shares_host_files: ClassVar[bool] = True
    #: Whether the command has a network of its own (a container's loopback only),
    #: which :meth:`net_namespace` finds once it runs.
    own_network: ClassVar[bool] = False

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._closed = False
        self._socket_dir: Path | None = None
        self._scratch: Path | None = None
        self._record: Record | None = None
        self._watchdog: Watchdog | None = None

    # -- what backends provide -------------------------------------------
    @abc.abstractmethod
    def _popen(
        self, argv: Sequence[str], env: dict[str, str], cwd: str | None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the limits (``expose`` may be among the keywords)."""

    @abc.abstractmethod
    def _read(self) -> Reading:
        """Read the cgroup now (wall time filled in by :meth:`reading`)."""

    @abc.abstractmethod
    def _teardown(self) -> None:
        """Kill every process and remove every cgroup, mount and file; idempotent."""

    @property
    @abc.abstractmethod
    def home(self) -> str:
        """The home directory as the command inside sees it."""

    @property
    def socket_dir(self) -> tuple[str, Path]:
        """A folder for the server's Unix socket: (as the command sees it, on the host).

        Only hubprobe and the command inside can enter it. Here: a private
        temporary folder at the same path on both sides, for backends that
        share the host's files; a container shows its own.
        """
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix=f"hubprobe-{os.getpid()}-sock-"))
        return str(self._socket_dir), self._socket_dir

    def net_namespace(self) -> Path | None:
        """The command's own network namespace (``/proc/PID/ns/net``) once it runs.

        None before it runs, and where the command shares the host's network.
        """
        return None

    @property
    def scratch(self) -> Path:
        """A host folder for the run's own files (logs, what goes into the home).

        Removed with the sandbox, also by the watchdog or the next run when
        hubprobe was killed: it lies in the sandbox's recorded work folder.
        """
        if self._scratch is None:
            if self._record is not None and self._record.workdir:
                self._scratch = Path(self._record.workdir) / "run"
                self._scratch.mkdir(mode=0o700, exist_ok=True)
            else:
                self._scratch = Path(tempfile.mkdtemp(prefix=f"hubprobe-{os.getpid()}-run-"))
        return self._scratch

    def _register(self, record: Record) -> None:
        """Write down what this sandbox will make, before it makes it, and watch it."""
        from hubprobe.sandbox import registry
        from hubprobe.sandbox.watchdog import Watchdog

        self._record = record
        registry.save(record)
        self._watchdog = Watchdog(record.path)

    # -- shared behaviour --------------------------------------------------
    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: str | None = None,
        expose: Sequence[Path] = (),
        **popen_kwargs: object,
    ) -> subprocess.Popen[bytes]:
        """Start the sandbox's one command tree; ``env`` is added to ours (None unsets).

        ``expose``: host paths the command must be able to read (files to copy
        into the home, an interpreter elsewhere); a container binds them in
        read-only, where the host's filesystem is not shared they are visible anyway.
        """
        if self.process is not None:
            raise SandboxError("this sandbox already runs a command; create another one")
        if self._closed:
            raise SandboxError("this sandbox is closed")
        if self.inherits_environment:
            full_env = dict(os.environ)
        else:
            full_env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        full_env.update(self.limits.env)
        full_env["HOME"] = self.home
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        self._started = time.monotonic()
        if expose and not self.shares_host_files:
            popen_kwargs["expose"] = [str(p) for p in expose]
        self.process = self._popen(list(argv), full_env, cwd or self.home, **popen_kwargs)
        return self.process

    def reading(self) -> Reading:
        wall = time.monotonic() - self._started if self._started else 0.0
        return dataclasses.replace(self._read(), wall_seconds=wall)

    def reset_peak(self) -> bool:
        """Start a new peak-memory window, if the backend can; False if it cannot."""
        return False

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the command; raise ``subprocess.TimeoutExpired`` past ``timeout``."""
        if self.process is None:
            raise SandboxError("nothing was started in this sandbox")
        return self.process.wait(timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with interrupts.shielded():  # a second Ctrl-C must not cut teardown short
                self._teardown()
                for folder in (self._socket_dir, self._scratch):
                    if folder is not None:
                        shutil.rmtree(folder, ignore_errors=True)
                self._unregister()

    def _unregister(self) -> None:
        from hubprobe.sandbox import registry

        if self._record is not None:
            registry.remove(self._record)  # whatever the backend's own teardown missed
            registry.forget(self._record)
        if self._watchdog is not None:
            self._watchdog.done()
            self._watchdog = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Backend(abc.ABC):
    """A way of making sandboxes; stateless, cheap to construct."""

    name: ClassVar[str]
    summary: ClassVar[str]
    fidelity: ClassVar[Fidelity]

    @abc.abstractmethod
    def check(self) -> Availability:
        """Whether this backend works here, without changing anything."""

    @abc.abstractmethod
    def create(
        self, limits: Limits, *, workdir: Path | None = None, expose: Sequence[Path] = ()
    ) -> Sandbox:
        """Make the cgroups, home and namespaces; nothing runs yet.

        ``expose``: host paths the command inside must be able to read (the
        prefix of a Python environment a kernel runs from). Backends that
        show the command the whole host filesystem need do nothing with it.
        """
