"""A whole course at once: the notebooks of a folder, several at a time, each in its own sandbox.

``hubprobe check DIR`` finds the notebooks under DIR (not Jupyter's
checkpoints, not hidden folders such as ``.git`` or a virtual environment),
and runs as many at once as the machine can hold without one run changing
another's figures: each sandbox gets the profile's whole memory limit and
CPU quota, so no more run together than the free memory holds limits, nor
than the cores hold quotas (two at a time on a 2-core machine for a 1-CPU
profile; one at a time for a 4-CPU profile there).

A Ctrl-C stops every run: the sandboxes of the runs still going are closed
from here (their processes killed), and each run's own teardown then
removes what is left.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from hubprobe.check.run import CheckResult, Plan, check_notebook
from hubprobe.errors import UsageError
from hubprobe.profiles import Profile
from hubprobe.sandbox import Backend, Limits, Sandbox

__all__ = ["find_notebooks", "parallel_runs", "run_all"]

#: Not gone into: Jupyter's checkpoints, and hidden folders (.git, .venv, .ipython).
_SKIP_CHECKPOINTS = ".ipynb_checkpoints"


def find_notebooks(args: Sequence[str]) -> list[Path]:
    """Each argument as a notebook, or the notebooks under it when it is a folder."""
    found: list[Path] = []
    for arg in args:
        path = Path(arg)
        if not path.is_dir():
            found.append(path)  # a missing file is said by load_assignment, in one line
            continue
        inside = sorted(
            p
            for p in path.rglob("*.ipynb")
            if not any(
                part == _SKIP_CHECKPOINTS or part.startswith(".")
                for part in p.relative_to(path).parts[:-1]
            )
            and not p.name.startswith(".")
        )
        if not inside:
            raise UsageError(f"{arg}: no notebooks in it", "give a folder that holds .ipynb files")
        found += inside
    return list(dict.fromkeys(found))


def _available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def parallel_runs(
    profile: Profile,
    notebooks: int,
    *,
    cores: int | None = None,
    available_bytes: int | None = None,
) -> tuple[int, str]:
    """How many notebooks to run at once here, and why (said to the user)."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    available = available_bytes if available_bytes is not None else _available_memory()
    by_cpu = max(int(cores // max(profile.cpu_limit, 0.01)), 1)
    # Leave a fifth of what is free to everything else on the machine.
    by_memory = (
        max(math.floor(available * 0.8 / profile.memory_limit_bytes), 1)
        if available is not None
        else 1
    )
    jobs = max(min(by_cpu, by_memory, notebooks), 1)
    why = (
        f"{jobs} at a time ({cores} cores for {profile.cpu_limit:g}-CPU sessions, memory for "
        f"{by_memory} sessions of {profile.memory_limit_bytes // 2**20} MiB)"
    )
    return jobs, why


class _Tracking:
    """A backend whose sandboxes can all be closed from another thread (on Ctrl-C)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.fidelity = inner.fidelity
        self._lock = threading.Lock()
        self.live: list[Sandbox] = []

    def create(self, limits: Limits, **kwargs: Any) -> Sandbox:
        sandbox = self.inner.create(limits, **kwargs)
        with self._lock:
            self.live.append(sandbox)
        return sandbox

    def close_all(self) -> None:
        with self._lock:
            live = list(self.live)
        for sandbox in live:
            with contextlib.suppress(Exception):  # the run's own teardown tries again
                sandbox.close()


@dataclasses.dataclass
class Progress:
    """What the caller is told: a notebook started, a notebook finished (or failed)."""

    started: Callable[[int, Plan], None]
    finished: Callable[[int, Plan, CheckResult | None, BaseException | None], None]


def run_all(
    plans: Sequence[Plan],
    profile: Profile,
    backend: Backend,
    *,
    jobs: int,
    progress: Progress,
    **check: Any,
) -> list[CheckResult]:
    """Check every plan, ``jobs`` at a time; results in the plans' order.

    ``check``: passed to :func:`check_notebook` (cell_timeout, keep_going, ...).
    A run that raises (a copy that fails, no sandbox) is reported through
    ``progress.finished`` and raised again once the others are done.
    """
    tracking = _Tracking(backend)
    results: dict[int, CheckResult] = {}
    failures: list[BaseException] = []

    def one(i: int, plan: Plan) -> None:
        progress.started(i, plan)
        try:
            result = check_notebook(plan.path, profile, cast(Backend, tracking), plan=plan, **check)
        except BaseException as exc:
            failures.append(exc)
            progress.finished(i, plan, None, exc)
            raise
        results[i] = result
        progress.finished(i, plan, result, None)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="check")
    futures: list[concurrent.futures.Future[None]] = []
    try:
        futures += [pool.submit(one, i, plan) for i, plan in enumerate(plans)]
        concurrent.futures.wait(futures)
    except BaseException:
        # Ctrl-C lands here, in the main thread: stop what is running, then wait for teardown.
        for f in futures:
            f.cancel()
        tracking.close_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if failures:
        raise failures[0]
    return [results[i] for i in range(len(plans))]
