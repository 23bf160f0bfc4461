"""Run one command in a sandbox: wait with a timeout, read, tear down."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Mapping, Sequence

from hubprobe.sandbox.base import Reading, Sandbox

__all__ = ["TIMEOUT_EXIT", "RunResult", "run_command"]

#: Exit status for a command stopped at its timeout, as coreutils' timeout uses.
TIMEOUT_EXIT = 124


@dataclasses.dataclass(frozen=True)
class RunResult:
    exit_code: int
    timed_out: bool
    reading: Reading


def exit_status(returncode: int) -> int:
    """A shell's view of a status: killed by signal N reads as 128 + N (137 for SIGKILL)."""
    return 128 - returncode if returncode < 0 else returncode


def run_command(
    sandbox: Sandbox,
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str | None] | None = None,
) -> RunResult:
    """Run ``argv`` to its end (or ``timeout``); the reading is taken before teardown."""
    sandbox.spawn(argv, env=env)
    timed_out = False
    try:
        code = exit_status(sandbox.wait(timeout))
    except subprocess.TimeoutExpired:
        timed_out = True
        code = TIMEOUT_EXIT
    reading = sandbox.reading()
    sandbox.close()
    return RunResult(exit_code=code, timed_out=timed_out, reading=reading)
