"""Helpers for the hub tests: a small profile with this machine as the node, and settling."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import leftovers

from hubprobe.profiles import Profile, load_profile

if TYPE_CHECKING:
    from hubprobe.hub.local import LocalHub


def mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def write_profile(folder: Path, name: str = "hubtest", **changes: str) -> Path:
    """curriculum-guide made small, with this machine as the node; ``changes``: old=new text."""
    text = load_profile("curriculum-guide").path.read_text()
    swaps = {
        'name = "curriculum-guide"': f'name = "{name}"',
        'limit = "2G"': 'limit = "768M"',
        'guarantee = "1G"': 'guarantee = "512M"',
        'size = "10G"': 'size = "2G"',
        "limit = 1024": "limit = 512",
        "cpus = 8": f"cpus = {os.cpu_count()}",
        'memory = "64G"': f'memory = "{mem_total()}"',
        **changes,
    }
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def count() -> leftovers.Leftovers:
    """leftovers.count(), less the /tmp folders that name no creating pid.

    Every folder hubprobe's sandboxes and hub make is named hubprobe-<pid>-...;
    the shared machine's other runs (a bench's hubprobe-bench-site-...) come
    and go in the same /tmp while these long tests run.
    """
    found = leftovers.count()
    return dataclasses.replace(found, workdirs=tuple(w for w in found.workdirs if _PID.search(w)))


_PID = re.compile(r"/hubprobe-\d+-")


def _new(before: leftovers.Leftovers, after: leftovers.Leftovers) -> dict[str, list[object]]:
    """What is in ``after`` and was not in ``before``, per kind (what vanished is not ours)."""
    new = {}
    for field in dataclasses.fields(after):
        added = sorted(set(getattr(after, field.name)) - set(getattr(before, field.name)))
        if added:
            new[field.name] = added
    return new


def settle(before: leftovers.Leftovers, seconds: float = 10) -> dict[str, list[object]]:
    """What is left that was not there ``before``, once reaping has had its moment; {} is none.

    Only what appeared counts: on this shared machine other runs' dead folders
    may be removed meanwhile, which is no leftover of ours.
    """
    deadline = time.monotonic() + seconds
    new = _new(before, count())
    while new and time.monotonic() < deadline:
        time.sleep(0.2)
        new = _new(before, count())
    return new


@contextlib.contextmanager
def running_hub(profile: Profile, users: tuple[str, ...]) -> Iterator[LocalHub]:
    """A started local hub; stopped after, and nothing of it may be left."""
    from hubprobe.hub.local import LocalHub

    before = count()
    hub = LocalHub(profile, users=users)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
    left = settle(before)
    assert left == {}, f"the local hub left behind: {left}"


def probes(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``hubprobe probes ARGS`` in a subprocess, without a hub token in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "JUPYTERHUB_API_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "hubprobe", "probes", *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip
