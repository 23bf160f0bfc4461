"""Shared fixtures: a working sandbox backend, and the leftover check around it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import leftovers

from hubprobe.sandbox import Backend, SandboxError, choose_backend


@pytest.fixture(scope="session")
def backend() -> Backend:
    """The backend hubprobe would choose here; skip (with why) where none works."""
    try:
        return choose_backend()
    except SandboxError as exc:
        pytest.skip(f"no sandbox backend works on this machine: {exc}")


@pytest.fixture(autouse=True)
def no_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Around every real-sandbox test: nothing of ours may survive it."""
    if request.node.get_closest_marker("sandbox") is None:
        yield
        return
    request.getfixturevalue("backend")  # skips, with the reason, where none works
    before = leftovers.count()
    yield
    # Reaping by the kernel (loop autoclear, zombie removal) can lag a moment.
    deadline = time.monotonic() + 3
    after = leftovers.count()
    while after != before and time.monotonic() < deadline:
        time.sleep(0.05)
        after = leftovers.count()
    assert after == before, f"left behind: before={before} after={after}"
