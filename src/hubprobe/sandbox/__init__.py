"""Sandboxes whose limits match a hub profile, one backend per module.

:func:`choose_backend` picks the most faithful backend that works here, or
the one asked for; it never falls back silently to a less faithful one.
"""

from __future__ import annotations

from hubprobe.errors import UsageError
from hubprobe.sandbox.base import (
    Availability,
    Backend,
    Fidelity,
    Limits,
    Reading,
    Sandbox,
    SandboxError,
)
from hubprobe.sandbox.cgroup1 import Cgroup1Backend
from hubprobe.sandbox.cgroup2 import Cgroup2Backend
from hubprobe.sandbox.engine import DockerBackend, PodmanBackend
from hubprobe.sandbox.inplace import InplaceBackend
from hubprobe.sandbox.oci import OciBackend
from hubprobe.sandbox.systemd import SystemdBackend

__all__ = [
    "BACKENDS",
    "Availability",
    "Backend",
    "Fidelity",
    "Limits",
    "Reading",
    "Sandbox",
    "SandboxError",
    "choose_backend",
    "get_backend",
]

#: In order of preference for automatic choice: most faithful first.
BACKENDS: list[type[Backend]] = [
    OciBackend,
    Cgroup2Backend,
    Cgroup1Backend,
    DockerBackend,
    PodmanBackend,
    SystemdBackend,
    InplaceBackend,
]
#: Backends that are only used when asked for by name.
MANUAL_ONLY = frozenset({"inplace"})


def get_backend(name: str) -> Backend:
    for cls in BACKENDS:
        if cls.name == name:
            return cls()
    names = ", ".join(cls.name for cls in BACKENDS)
    raise UsageError(f"unknown backend {name!r}", f"choose one of: {names}")


def choose_backend(name: str | None = None) -> Backend:
    """The named backend if it works here, else the first that works; or a clear error."""
    if name is not None:
        backend = get_backend(name)
        status = backend.check()
        if not status.usable:
            raise SandboxError(
                f"backend {name} does not work here: {status.reason}; {status.fix or 'see hubprobe doctor'}"
            )
        return backend
    reasons = []
    for cls in BACKENDS:
        if cls.name in MANUAL_ONLY:
            continue
        backend = cls()
        status = backend.check()
        if status.usable:
            return backend
        reasons.append(f"{cls.name}: {status.reason}")
    raise SandboxError(
        "no sandbox backend works here ("
        + "; ".join(reasons)
        + "); run as root on a cgroup machine, or see `hubprobe doctor` for what to do"
    )
