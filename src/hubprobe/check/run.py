"""``hubprobe check``: run an assignment notebook as a student would, under a hub's limits.

A fresh sandbox, server and kernel per notebook; the notebook's folder, or
the course repository around it (:mod:`hubprobe.check.layout`), copied into
the private home, and the kernel started at the notebook's place in it, in
the interpreter standing for the hub's image
(:mod:`hubprobe.check.environment`). The run stops at the first cell that
is killed, raises or times out: the verdict is there, and later cells would
only fail for want of its variables. With ``keep_going`` every cell runs
whatever happened before it (as nbconvert's ``--allow-errors``), so the
memory and time of a student version with blanks are still measured; after
a kill the run goes on only with ``after_kill="continue"`` (a student would
re-run the cells).

Everything a user can get wrong is checked by :func:`prepare` before any
sandbox is made, so a bad argument costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.check import otter
from hubprobe.check.environment import (
    Interpreter,
    choose_interpreter,
    imported_names,
    kernelspec_files,
    missing_module,
    parse_versions,
    versions_code,
    worker_counts,
)
from hubprobe.check.layout import Layout, folder_size, layout_for
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
from hubprobe.jupyter.notebook import RAISES, NotebookRun, read_quietly, run_notebook
from hubprobe.profiles import Profile
from hubprobe.sandbox import Backend

__all__ = [
    "AFTER_KILL",
    "CheckError",
    "CheckResult",
    "Plan",
    "check_notebook",
    "folder_size",
    "interrupted_result",
    "load_assignment",
    "prepare",
]

#: What to do after a kernel is killed: stop there, or go on as a student re-running would.
AFTER_KILL = ("stop", "continue")


class CheckError(UsageError):
    """A notebook that cannot be checked; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What will run, decided before any sandbox: the notebook, the copy, the interpreter."""

    path: Path
    notebook: nbformat.NotebookNode  # what runs (an otter master: its solution view)
    layout: Layout
    interpreter: Interpreter
    #: Cell numbers of what runs -> numbers in the file the instructor has open.
    numbers: dict[int, int]
    total_cells: int  # in the file, markdown included
    notes: tuple[str, ...] = ()
    extra_hints: tuple[Hint, ...] = ()

    @property
    def sources(self) -> dict[int, str]:
        return {
            self.numbers.get(i, i): c.source
            for i, c in enumerate(self.notebook.cells, start=1)
            if c.cell_type == "code"
        }


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
    #: Which Python ran the kernel, and the versions of what the notebook imported.
    interpreter: str = ""
    packages: dict[str, str] = dataclasses.field(default_factory=dict)
    #: What was copied into the home, and where the kernel started in it.
    copied: str = ""
    kernel_cwd: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)
    #: n_jobs=-1's worker count here and on the hub, and whether the hub's was used.
    joblib_workers: dict[str, Any] = dataclasses.field(default_factory=dict)


def _kernel_language(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """(what the notebook says its kernel is, its language); '' where it says nothing."""
    spec = nb.metadata.get("kernelspec", {}) or {}
    info = nb.metadata.get("language_info", {}) or {}
    name = str(spec.get("name") or spec.get("display_name") or "")
    language = str(spec.get("language") or info.get("name") or "")
    return name, language


def load_assignment(path: Path) -> nbformat.NotebookNode:
    """Read and vet one notebook; raise :class:`CheckError` with what is wrong."""
    if not path.exists():
        raise CheckError(f"{path}: no such file")
    if not path.is_file():
        raise CheckError(f"{path}: not a file (give the path of a .ipynb notebook or a folder)")
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
    return nb


def prepare(
    path: Path,
    profile: Profile,
    *,
    root: str | None = None,
    python: str | None = None,
    env: str | None = None,
    otter_tests: bool = False,
) -> Plan:
    """Everything decided before a sandbox: raises :class:`UsageError` for what cannot run."""
    nb = load_assignment(path)
    total = len(nb.cells)
    layout = layout_for(path, root, profile.storage_bytes)
    spec_name = str((nb.metadata.get("kernelspec", {}) or {}).get("name") or "")
    interpreter, kernel_note = choose_interpreter(python, env, spec_name)
    notes = [kernel_note] if kernel_note else []
    extra: list[Hint] = []
    numbers = {i: i for i in range(1, len(nb.cells) + 1)}
    if otter.is_master(nb):
        view = otter.solution_view(nb, path, public_tests=otter_tests)
        nb, numbers = view.notebook, view.numbers
        notes.append(view.note)
    elif (blank := otter.first_blank(nb)) is not None:
        extra.append(Hint(blank, "student_version", otter.STUDENT_HINT))
    return Plan(
        path=path, notebook=nb, layout=layout, interpreter=interpreter, numbers=numbers,
        total_cells=total, notes=tuple(notes), extra_hints=tuple(extra),
    )  # fmt: skip


def _size_in(folder: Path) -> Callable[[str], int | None]:
    """A file's size as the kernel would find it: relative to its working directory."""

    def size_of(name: str) -> int | None:
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = folder / path
        try:
            return path.stat().st_size if path.is_file() else None
        except OSError:
            return None

    return size_of


#: Runs one notebook: ``run_notebook`` with a backend, or a hub's runner (hubprobe.hub.runner).
Runner = Callable[..., NotebookRun]


def _renumber(run: CellRun, numbers: dict[int, int]) -> CellRun:
    return dataclasses.replace(run, index=numbers.get(run.index, run.index))


def _module_hints(cells: list[CellRun], interpreter: Interpreter) -> list[Hint]:
    """A cell that failed for a missing module: name it, and the interpreter that lacks it."""
    found: dict[str, list[int]] = {}
    for c in cells:
        for out in c.outputs:
            if out.get("output_type") == "error" and out.get("ename") == "ModuleNotFoundError":
                name = missing_module(str(out.get("evalue", "")))
                if name:
                    found.setdefault(name, []).append(c.index)
    return [
        Hint(where[0], "missing_module", (
            f"no module named {name!r} in {interpreter.python} (Python {interpreter.version}, "
            f"{interpreter.chosen_by}); install it there, or give --python or --env for the "
            "environment the hub's image has"
        ), tuple(where))
        for name, where in found.items()
    ]  # fmt: skip


def check_notebook(
    path: Path,
    profile: Profile,
    backend: Backend | None,
    *,
    cell_timeout: float,
    on_cell: Callable[[CellRun], None] | None = None,
    progress: Callable[[str], None] | None = None,
    keep_going: bool = False,
    after_kill: str = "stop",
    plan: Plan | None = None,
    hub_cpus: bool = False,
    runner: Runner | None = None,
) -> CheckResult:
    """Run ``path`` in a fresh sandbox under ``profile``; the file on disk is not changed.

    ``progress``: told "cell N" as a cell starts; ``on_cell``: called with
    each cell as it finishes (numbered as in the file). ``keep_going``: run
    every cell, whatever happened before it; ``after_kill``: "stop" or
    "continue". ``plan``: from :func:`prepare` (made here if not given).
    ``hub_cpus``: the kernel counts the hub node's cores, so joblib starts as
    many workers as there (see :func:`~hubprobe.check.environment.worker_counts`).
    Raises :class:`CheckError` for a notebook that cannot be checked, and
    :class:`~hubprobe.sandbox.SandboxError` when no sandbox can be made.
    ``runner``: run the notebook elsewhere (a hub's server) instead of in a
    sandbox made by ``backend``; it takes the same keywords as ``run_notebook``.
    """
    if after_kill not in AFTER_KILL:
        raise CheckError(f"--after-kill {after_kill}: choose one of {', '.join(AFTER_KILL)}")
    plan = plan or prepare(path, profile)
    nb, numbers = plan.notebook, plan.numbers
    allowed = frozenset(
        numbers.get(i, i)
        for i, c in enumerate(nb.cells, start=1)
        if c.cell_type == "code" and RAISES in c.get("metadata", {}).get("tags", [])
    )

    def after_cell(run: CellRun) -> bool:
        run = _renumber(run, numbers)
        if on_cell is not None:
            on_cell(run)
        if run.outcome in KERNEL_DIED:
            return after_kill == "stop"
        return not keep_going and stops_check(run, allowed)

    def told(msg: str) -> None:
        if progress is not None:
            word, _, n = msg.partition(" ")
            progress(f"{word} {numbers.get(int(n), n)}" if n.isdigit() else msg)

    def after_code(_run: CellRun, source: str) -> str | None:
        # Count joblib's workers where a cell asked for some: the hint says what really ran.
        return JOBLIB_WORKERS_CODE if asks_for_workers(source) else None

    interp = plan.interpreter
    workers = worker_counts(profile.cpu_limit, profile.node_cpus, hub_cpus)
    started = time.monotonic()
    if runner is None:
        assert backend is not None
        runner = functools.partial(run_notebook, backend=backend)
    try:
        run = runner(
            path, profile, cell_timeout=cell_timeout, progress=told,
            home_files=plan.layout.root, home_only=plan.layout.files, after_cell=after_cell,
            notebook=nb, keep_going=keep_going, after_code=after_code,
            kernel_name=interp.kernel_name, kernel_path=plan.layout.kernel_path,
            home_extra={**kernelspec_files(interp), **workers.files}, env=dict(workers.env),
            expose=interp.expose, closing_code=versions_code(imported_names(plan.sources.values())),
        )  # fmt: skip
    except shutil.Error as exc:
        # copytree gathers every file it could not copy (unreadable, a socket).
        problems = exc.args[0] if exc.args and isinstance(exc.args[0], list) else [exc]
        first = problems[0]
        if isinstance(first, tuple) and len(first) == 3:  # (source, destination, why)
            first = f"{first[0]}: {first[2]}"
        raise CheckError(
            f"{plan.layout.root}: cannot copy it into the home ({len(problems)} file(s); {first})"
        ) from exc
    cells = [_renumber(c, numbers) for c in run.cells]
    sources = plan.sources
    verdict = judge(cells, profile.memory_limit_bytes, allowed)
    found = list(plan.extra_hints) + _module_hints(cells, interp)
    found += hints(
        sources, cells, profile.memory_limit_bytes, profile.cpu_limit,
        profile.cpu_guarantee, profile.node_cpus, _size_in(path.resolve().parent),
    )  # fmt: skip
    about: dict[str, Any] = parse_versions(run.closing_output)
    return CheckResult(
        path=path,
        profile=profile,
        backend=run.backend,
        cells=cells,
        sources=sources,
        verdict=verdict,
        hints=sorted(found, key=lambda h: (h.cell, h.kind)),
        wall_seconds=time.monotonic() - started,
        startup_seconds=run.startup_seconds,
        total_cells=plan.total_cells,
        keep_going=keep_going,
        after_kill=after_kill,
        interpreter=interp.describe(),
        packages={str(k): str(v) for k, v in (about.get("packages") or {}).items()},
        copied=plan.layout.describe(),
        kernel_cwd=plan.layout.kernel_path or ".",
        notes=[*plan.notes, *([workers.note] if workers.note else [])],
        joblib_workers={
            "here": workers.here,
            "hub": workers.hub,
            "hub_count_used": workers.hub_count_used,
        },
    )


def interrupted_result(
    path: Path,
    profile: Profile,
    backend: str,
    measured: list[CellRun],
    *,
    signal_name: str,
    wall_seconds: float,
    plan: Plan | None = None,
) -> CheckResult:
    """What a run stopped by a signal measured: its report is still written.

    ``measured``: the cells that finished before the signal (numbered as in
    the file); the rest are listed as not run.
    """
    sources = plan.sources if plan is not None else {
        i: c.source for i, c in enumerate(read_quietly(path).cells, start=1)
        if c.cell_type == "code"
    }  # fmt: skip
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
        total_cells=max(sources, default=0),
        interpreter=plan.interpreter.describe() if plan else "",
        copied=plan.layout.describe() if plan else "",
    )  # fmt: skip
