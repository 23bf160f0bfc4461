"""The OCI ``config.json`` of one sandbox: a hub pod's boundary, as data.

Pure: from the limits and a few host facts (its mounts, where the home's
loop device is) to the dict that runc reads, so every choice below is
tested against fixtures and read in one place.

What the spec gives the command, as a Kubernetes user pod has it:

- uid 1000 / gid 100 (jovyan/users), no capabilities in any set,
  ``noNewPrivileges``, a seccomp filter that refuses new user namespaces
  and kernel-surface calls (keyrings, bpf, perf, module loading);
- its own PID, network (only ``lo``), mount, IPC, UTS and cgroup
  namespaces;
- the host's filesystem read-only: the host's ``/`` is bound
  (non-recursively) as the root, and every other host mount is bound again
  read-only on top, because a read-only root covers only its own mount;
- ``/run``, ``/root`` and ``/home`` hidden behind empty read-only folders
  (host sockets live under ``/run``; ``connect()`` ignores read-only
  mounts), a private ``/tmp`` and ``/var/tmp`` (tmpfs, counted towards
  memory as on a hub), a private ``/dev``;
- the home, an ext4 image of the profile's size on a loop device, and the
  one folder the server's Unix socket lives in;
- read-only cgroup files that show the sandbox's own limits (the runtime's
  cgroup mount under the cgroup namespace), which is where joblib looks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from hubprobe.sandbox.base import CFS_PERIOD_US, MIN_CFS_QUOTA_US

__all__ = [
    "GID",
    "HIDDEN",
    "HOME",
    "PRIVATE_TMP",
    "SOCKET_DIR",
    "UID",
    "SpecInput",
    "build_spec",
    "exposed",
    "identity_files",
    "is_under",
    "mount_points_to_make",
]

UID, GID = 1000, 100
HOME = "/home/jovyan"
#: Where the server's Unix socket folder appears inside.
SOCKET_DIR = "/run/hubprobe"
#: Host folders the command does not see: each is an empty read-only folder inside.
HIDDEN = ("/run", "/root", "/home")
#: Private, writable, in memory.
PRIVATE_TMP = ("/tmp", "/var/tmp")
#: Mounted fresh for the container; host mounts below them are not carried over.
_FRESH = ("/proc", "/sys", "/dev")
_NOSX = ["nosuid", "nodev", "noexec"]
TMP_BYTES = 1 << 30
SHM_BYTES = 64 << 20


def is_under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


@dataclasses.dataclass(frozen=True)
class SpecInput:
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    memory_bytes: int
    cpu: float
    pids: int
    #: "/dev/loopN" holding the home's ext4 image.
    loop_device: str
    #: Host folder shown at SOCKET_DIR (owned by the container's uid), or None.
    socket_dir: str | None
    #: Host folder holding the empty stand-ins for HIDDEN (see mount_points_to_make).
    masks: str
    #: Every host mount point, in mount order (from /proc/self/mountinfo).
    host_mounts: Sequence[str]
    #: Host paths the command must read although they are hidden or private
    #: (the interpreter's prefix under /root, files to copy into the home).
    expose: Sequence[str] = ()
    #: Host folder with the container's own passwd and group (jovyan), or None.
    identity: str | None = None
    #: cgroup v2 hosts: the kernel's own whole-container OOM kill.
    oom_group_v2: bool = False
    nofile: int = 20_000
    hostname: str = "hubprobe"


def _bind(dest: str, src: str, *opts: str, recursive: bool = False) -> dict[str, Any]:
    kind = "rbind" if recursive else "bind"
    return {"destination": dest, "type": "bind", "source": src, "options": [kind, *opts]}


def _tmpfs(dest: str, size: int, mode: str = "1777", *opts: str) -> dict[str, Any]:
    return {
        "destination": dest,
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "nodev", f"mode={mode}", f"size={size}", *opts],
    }


def exposed(paths: Sequence[str]) -> list[str]:
    """The paths that need a bind of their own: those under a hidden or private folder."""
    return list(dict.fromkeys(
        p for p in paths if any(is_under(p, top) and p != top for top in (*HIDDEN, *PRIVATE_TMP))
        and not is_under(p, HOME)
    ))  # fmt: skip


def mount_points_to_make(expose: Sequence[str], socket_dir: bool) -> list[str]:
    """Folders to create inside the stand-ins for HIDDEN, so nothing is made on the host.

    A mount point under a read-only stand-in must exist before the runtime
    mounts on it; under the private tmpfs the runtime makes it itself.
    """
    inner = [HOME, *exposed(expose), *([SOCKET_DIR] if socket_dir else [])]
    return sorted({p for p in inner for top in HIDDEN if is_under(p, top) and p != top})


def identity_files() -> dict[str, str]:
    """/etc/passwd and /etc/group as a hub's image has them for its user."""
    return {
        "passwd": f"root:x:0:0:root:/root:/bin/sh\njovyan:x:{UID}:{GID}::{HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nusers:x:{GID}:jovyan\nnogroup:x:65534:\n",
    }


def build_spec(s: SpecInput) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [_bind(top, f"{s.masks}{top}", "ro", *_NOSX) for top in HIDDEN]
    mounts += [_tmpfs(d, TMP_BYTES) for d in PRIVATE_TMP]
    # After the stand-ins and the private folders, so they show through them;
    # whatever is elsewhere is visible already, read-only.
    mounts += [_bind(p, p, "ro", "nosuid", "nodev", recursive=True) for p in exposed(s.expose)]
    mounts.append(
        {
            "destination": HOME,
            "type": "ext4",
            "source": s.loop_device,
            "options": ["nosuid", "nodev"],
        }
    )
    if s.socket_dir is not None:
        mounts.append(_bind(SOCKET_DIR, s.socket_dir, *_NOSX))
    if s.identity is not None:  # jovyan, as in a hub's image
        mounts += [
            _bind(f"/etc/{f}", f"{s.identity}/{f}", "ro", *_NOSX) for f in ("passwd", "group")
        ]
    mounts += [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": _NOSX},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [*_NOSX, "mode=1777", f"size={SHM_BYTES}"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": _NOSX},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*_NOSX, "ro"]},
        # Under the cgroup namespace runc mounts each hierarchy at the
        # container's own cgroup, read-only: the limits read as the sandbox's.
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [*_NOSX, "relatime", "ro"],
        },
    ]
    # Every other host mount again, read-only (the read-only root covers only "/").
    covered = (*_FRESH, *HIDDEN, *PRIVATE_TMP)
    mounts += [
        _bind(point, point, "ro", "nosuid", "nodev")
        for point in dict.fromkeys(s.host_mounts)
        if point != "/" and not any(is_under(point, c) for c in covered)
    ]
    resources: dict[str, Any] = {
        "devices": [{"allow": False, "access": "rwm"}],
        # memory+swap equal to memory: no swap, as on a hub's node.
        "memory": {"limit": s.memory_bytes, "swap": s.memory_bytes, "disableOOMKiller": False},
        "cpu": {
            "quota": max(MIN_CFS_QUOTA_US, round(s.cpu * CFS_PERIOD_US)),
            "period": CFS_PERIOD_US,
        },
        "pids": {"limit": s.pids},
    }
    if s.oom_group_v2:
        resources["unified"] = {"memory.oom.group": "1"}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": UID, "gid": GID, "additionalGids": [GID]},
            "args": list(s.argv),
            "env": [f"{k}={v}" for k, v in s.env.items()],
            "cwd": s.cwd,
            "capabilities": {
                k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": s.nofile, "soft": s.nofile}],
            "noNewPrivileges": True,
            "oomScoreAdj": 0,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": s.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")
            ],
            "resources": resources,
            "rootfsPropagation": "private",
            "seccomp": _SECCOMP,
            "maskedPaths": list(_MASKED),
            "readonlyPaths": list(_READ_ONLY),
        },
    }


#: As runc's and containerd's defaults: kernel files a container has no business reading.
_MASKED = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
)  # fmt: skip
_READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_REFUSED = (
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "kexec_load",
    "open_by_handle_at", "init_module", "finit_module", "delete_module",
)  # fmt: skip
_CLONE_NEWUSER = 0x10000000
#: Allow by default (a notebook runs arbitrary programs), refuse what a pod's
#: runtime default also refuses and that could widen the kernel's surface: a
#: new user namespace (clone3 hides its flags from seccomp, so it reads as
#: not implemented and glibc falls back to clone), keyrings, bpf, perf,
#: userfaultfd, kexec, handle-based opens and module loading.
_SECCOMP: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {
            "names": ["unshare", "clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "args": [
                {
                    "index": 0,
                    "value": _CLONE_NEWUSER,
                    "valueTwo": _CLONE_NEWUSER,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ],
        },
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {
            "names": list(_REFUSED),
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
        },
    ],
}
