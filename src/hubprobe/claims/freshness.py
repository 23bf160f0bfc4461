"""When a probe's result is still good: a hash of everything that shapes it.

A (probe, profile) result stays fresh while these are unchanged:

- the probe notebook's source (cells, tags, its ``hubprobe`` metadata),
- the profile's values (limits, OOM scope, environment; not its prose),
- the environment it ran in: the sandbox backend, the kernel's cgroup
  version, and the versions of Python and of the packages that shape the
  outcome (the server, the kernel, JupyterLab, the memory indicator,
  joblib, numpy).

The first two are the *content*: what the guide's author changes. The site
fails its strict build when they change. The environment is what the
machine changes; ``hubprobe probes`` re-runs on either, and ``--status``
says which part moved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
from typing import Any

import nbformat

from hubprobe.profiles import Profile

__all__ = [
    "OUTCOME_PACKAGES",
    "current_environment",
    "environment",
    "environment_changes",
    "probe_hash",
    "profile_hash",
]

#: The distributions whose versions change what a probe measures.
OUTCOME_PACKAGES = (
    "jupyter_server",
    "ipykernel",
    "jupyterlab",
    "jupyter-resource-usage",
    "joblib",
    "numpy",
)
#: Profile fields that are prose or bookkeeping: changing them changes no outcome.
_PROSE = {"name", "title", "description", "path", "sources"}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def probe_hash(nb: nbformat.NotebookNode) -> str:
    """A hash of what the probe does (cell types, sources, tags, metadata), not of its outputs."""
    h = hashlib.sha256()
    for cell in nb.cells:
        tags = ",".join(cell.get("metadata", {}).get("tags", []))
        h.update(f"{cell.cell_type}\0{cell.source}\0{tags}\0".encode())
    h.update(repr(sorted(nb.metadata.get("hubprobe", {}).items())).encode())
    return h.hexdigest()[:16]


def profile_hash(profile: Profile) -> str:
    """A hash of the profile's values: what the sandbox applies and the claims compare."""
    values = {
        f.name: getattr(profile, f.name)
        for f in dataclasses.fields(profile)
        if f.name not in _PROSE
    }
    return _digest(json.dumps(values, sort_keys=True, default=str))


def _dist(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(backend: str, cgroup_version: int | None) -> dict[str, str]:
    """The environment a probe runs in now: the server and kernel run this interpreter."""
    env = {"backend": backend, "cgroup": f"v{cgroup_version}" if cgroup_version else "none"}
    # The machine's cores decide which claims can be shown here at all.
    env["machine_cpus"] = str(os.cpu_count() or 1)
    env["python"] = platform.python_version()
    env.update({name: _dist(name) for name in OUTCOME_PACKAGES})
    return env


def current_environment(backend: str) -> dict[str, str]:
    """:func:`environment` on this machine: its cgroup version read from /proc."""
    from pathlib import Path

    from hubprobe.cgroup.locate import NoCgroup, own_groups

    try:
        version: int | None = own_groups(Path("/proc")).version
    except NoCgroup:
        version = None
    return environment(backend, version)


def environment_changes(recorded: dict[str, Any], now: dict[str, str]) -> list[str]:
    """What moved between a recorded environment and this one, as 'numpy 2.3.4 -> 2.3.5'."""
    return [
        f"{key} {recorded.get(key, 'unknown')} -> {value}"
        for key, value in now.items()
        if recorded.get(key) != value
    ]
