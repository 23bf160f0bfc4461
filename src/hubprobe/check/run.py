"""``hubprobe check``: run an assignment notebook as a student would, under a hub's limits.

A fresh sandbox, server and kernel per notebook; the notebook's folder (with
the files it reads) copied into the private home, which is the kernel's
working directory, as on a hub where the assignment is pulled into the home.
The run stops at the first cell that is killed, raises or times out: the
verdict is there, and later cells would only fail for want of its variables.
With ``keep_going`` every cell runs whatever happened before it (as
nbconvert's ``--allow-errors``), so the memory and time of a student version
with blanks are still measured; after a kill the run goes on only with
``after_kill="continue"`` (a student would re-run the cells).

Everything a user can get wrong is checked before any sandbox is made, so a
bad argument costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

from hubprobe.check.verdict import (
    JOBLIB_WORKERS_CODE,
    Hint,
    Verdict,
    asks_for_workers,
    hints,
    judge,
    stops_check,
)
from hubprobe.errors import UsageError
from hubprobe.jupyter.cells import KERNEL_DIED, CellRun, Outcome
from hubprobe.jupyter.notebook import RAISES, read_quietly, run_notebook
from hubprobe.profiles import Profile
from hubprobe.sandbox import Backend
from hubprobe.units import format_bytes

__all__ = [
    "AFTER_KILL",
    "CheckError",
    "CheckResult",
    "check_notebook",
    "folder_size",
    "interrupted_result",
    "load_assignment",
]

#: What to do after a kernel is killed: stop there, or go on as a student re-running would.
AFTER_KILL = ("stop", "continue")


class CheckError(UsageError):
    """A notebook that cannot be checked; the message is one line for the user."""


@dataclasses.dataclass
class CheckResult:
    path: Path
    profile: Profile
    backend: str
    cells: list[CellRun]  # one per code cell, in order
    sources: dict[int, str]  # code cell number -> source
    verdict: Verdict
    hints: list[Hint]
    wall_seconds: float
    startup_seconds: float
    total_cells: int  # markdown included
    keep_going: bool = False
    after_kill: str = "stop"


def _kernel_language(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """(what the notebook says its kernel is, its language); '' where it says nothing."""
    spec = nb.metadata.get("kernelspec", {}) or {}
    info = nb.metadata.get("language_info", {}) or {}
    name = str(spec.get("name") or spec.get("display_name") or "")
    language = str(spec.get("language") or info.get("name") or "")
    return name, language


def load_assignment(path: Path, storage_bytes: int) -> nbformat.NotebookNode:
    """Read and vet one notebook; raise :class:`CheckError` with what is wrong."""
    if not path.exists():
        raise CheckError(f"{path}: no such file")
    if not path.is_file():
        raise CheckError(f"{path}: not a file (give the path of a .ipynb notebook)")
    try:
        nb = read_quietly(path)
    except OSError as exc:
        raise CheckError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CheckError(f"{path}: not a notebook (not UTF-8 text)") from exc
    except nbformat.reader.NotJSONError as exc:
        raise CheckError(f"{path}: not a notebook (not JSON)") from exc
    except nbformat.ValidationError as exc:
        first = (str(exc).strip().splitlines() or ["invalid"])[0]
        raise CheckError(f"{path}: not a notebook ({first[:120]})") from exc
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        # JSON, but not shaped like a notebook (a list, say): nbformat trips over it.
        raise CheckError(f"{path}: not a notebook (JSON, but not shaped like one)") from exc
    name, language = _kernel_language(nb)
    python = language.lower() == "python" if language else "python" in name.lower()
    if (language or name) and not python:
        said = name or language
        raise CheckError(
            f"{path}: written for the {said!r} kernel ({language or 'not Python'}); "
            "hubprobe check runs Python notebooks only"
        )
    if not any(c.cell_type == "code" for c in nb.cells):
        raise CheckError(f"{path}: has no code cells, nothing to run")
    folder = folder_size(path.parent)
    if folder >= storage_bytes:
        raise CheckError(
            f"{path.parent}: holds {format_bytes(folder, measured=True)}, more than the profile's "
            f"{format_bytes(storage_bytes)} home; put the notebook in a folder with only "
            "what it reads"
        )
    return nb


def folder_size(folder: Path) -> int:
    """Bytes a copy of ``folder`` needs, symlinks not followed (they are copied as links)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += Path(root, name).lstat().st_size
            except OSError:
                continue
    return total


def _size_in(folder: Path) -> Callable[[str], int | None]:
    """A file's size as the kernel would find it: relative to the home, which is ``folder``."""

    def size_of(name: str) -> int | None:
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = folder / path
        try:
            return path.stat().st_size if path.is_file() else None
        except OSError:
            return None

    return size_of


def check_notebook(
    path: Path,
    profile: Profile,
    backend: Backend,
    *,
    cell_timeout: float,
    on_cell: Callable[[CellRun], None] | None = None,
    progress: Callable[[str], None] | None = None,
    keep_going: bool = False,
    after_kill: str = "stop",
) -> CheckResult:
    """Run ``path`` in a fresh sandbox under ``profile``; the file on disk is not changed.

    ``progress``: told "cell N" as a cell starts; ``on_cell``: called with
    each cell as it finishes. ``keep_going``: run every cell, whatever
    happened before it; ``after_kill``: "stop" or "continue". Raises
    :class:`CheckError` for a notebook that cannot be checked, and
    :class:`~hubprobe.sandbox.SandboxError` when no sandbox can be made.
    """
    nb = load_assignment(path, profile.storage_bytes)
    allowed = frozenset(
        i
        for i, c in enumerate(nb.cells, start=1)
        if c.cell_type == "code" and RAISES in c.get("metadata", {}).get("tags", [])
    )

    if after_kill not in AFTER_KILL:
        raise CheckError(f"--after-kill {after_kill}: choose one of {', '.join(AFTER_KILL)}")

    def after_cell(run: CellRun) -> bool:
        if on_cell is not None:
            on_cell(run)
        if run.outcome in KERNEL_DIED:
            return after_kill == "stop"
        return not keep_going and stops_check(run, allowed)

    def after_code(_run: CellRun, source: str) -> str | None:
        # Count joblib's workers where a cell asked for some: the hint says what really ran.
        return JOBLIB_WORKERS_CODE if asks_for_workers(source) else None

    started = time.monotonic()
    try:
        run = run_notebook(
            path, profile, backend, cell_timeout=cell_timeout, progress=progress,
            home_files=path.parent, after_cell=after_cell, notebook=nb, keep_going=keep_going,
            after_code=after_code,
        )  # fmt: skip
    except shutil.Error as exc:
        # copytree gathers every file it could not copy (unreadable, a socket).
        problems = exc.args[0] if exc.args and isinstance(exc.args[0], list) else [exc]
        first = problems[0]
        if isinstance(first, tuple) and len(first) == 3:  # (source, destination, why)
            first = f"{first[0]}: {first[2]}"
        raise CheckError(
            f"{path.parent}: cannot copy it into the home ({len(problems)} file(s); {first})"
        ) from exc
    sources = {i: c.source for i, c in enumerate(nb.cells, start=1) if c.cell_type == "code"}
    verdict = judge(run.cells, profile.memory_limit_bytes, allowed)
    found = hints(
        sources, run.cells, profile.memory_limit_bytes, profile.cpu_limit,
        profile.cpu_guarantee, profile.node_cpus, _size_in(path.parent),
    )  # fmt: skip
    return CheckResult(
        path=path,
        profile=profile,
        backend=backend.name,
        cells=run.cells,
        sources=sources,
        verdict=verdict,
        hints=found,
        wall_seconds=time.monotonic() - started,
        startup_seconds=run.startup_seconds,
        total_cells=len(nb.cells),
        keep_going=keep_going,
        after_kill=after_kill,
    )


def interrupted_result(
    path: Path,
    profile: Profile,
    backend: str,
    measured: list[CellRun],
    *,
    signal_name: str,
    wall_seconds: float,
) -> CheckResult:
    """What a run stopped by a signal measured: its report is still written.

    ``measured``: the cells that finished before the signal; the rest are
    listed as not run.
    """
    nb = read_quietly(path)
    sources = {i: c.source for i, c in enumerate(nb.cells, start=1) if c.cell_type == "code"}
    done = {c.index for c in measured}
    cells = list(measured) + [
        CellRun(index=i, outcome=Outcome.NOT_RUN) for i in sources if i not in done
    ]
    cells.sort(key=lambda c: c.index)
    judged = judge(measured, profile.memory_limit_bytes)
    last = measured[-1].index if measured else None
    where = f"after cell {last}" if last is not None else "before the first cell finished"
    verdict = dataclasses.replace(
        judged, kind="interrupted", at_cell=None,
        detail=f"interrupted by {signal_name} {where}: {len(measured)} of {len(sources)} code "
        f"cells measured; so far {judged.detail}",
    )  # fmt: skip
    return CheckResult(
        path=path, profile=profile, backend=backend, cells=cells, sources=sources,
        verdict=verdict, hints=[], wall_seconds=wall_seconds, startup_seconds=0.0,
        total_cells=len(nb.cells),
    )  # fmt: skip
