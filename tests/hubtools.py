"""Helpers for the hub tests: a small profile with this machine as the node, and settling."""

from __future__ import annotations

import os
import time
from pathlib import Path

import leftovers

from hubprobe.profiles import load_profile


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


def settle(before: leftovers.Leftovers, seconds: float = 10) -> leftovers.Leftovers:
    """The leftover count once what was stopped has gone (reaping can lag a moment)."""
    deadline = time.monotonic() + seconds
    after = leftovers.count()
    while after != before and time.monotonic() < deadline:
        time.sleep(0.2)
        after = leftovers.count()
    return after
