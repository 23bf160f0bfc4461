"""``hubprobe check``: run an assignment notebook as a student would, under a hub's limits.

A fresh sandbox, server and kernel per notebook; the notebook's folder (with
the files it reads) copied into the private home, which is the kernel's
working directory, as on a hub where the assignment is pulled into the home.
The run stops at the first cell that is killed, raises or times out: the
verdict is there, and later cells would only fail for want of its variables.

Everything a user can get wrong is checked before any sandbox is made, so a
bad argument costs nothing and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

from hubprobe.check.verdict import Hint, Verdict, hints, judge, stops_check
from hubprobe.errors import UsageError
from hubprobe.jupyter.cells import CellRun
from hubprobe.jupyter.notebook import RAISES, NotebookRun, run_notebook
from hubprobe.profiles import Profile
from hubprobe.sandbox import Backend
from hubprobe.units import format_bytes

__all__ = ["CheckError", "CheckResult", "check_notebook", "folder_size", "load_assignment"]


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
        nb: nbformat.NotebookNode = nbformat.read(path, as_version=4)
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


#: Runs one notebook: ``run_notebook`` with a backend, or a hub's runner (hubprobe.hub.runner).
Runner = Callable[..., NotebookRun]


def check_notebook(
    path: Path,
    profile: Profile,
    backend: Backend | None,
    *,
    cell_timeout: float,
    on_cell: Callable[[CellRun], None] | None = None,
    progress: Callable[[str], None] | None = None,
    runner: Runner | None = None,
) -> CheckResult:
    """Run ``path`` in a fresh sandbox under ``profile``; the file on disk is not changed.

    ``progress``: told "cell N" as a cell starts; ``on_cell``: called with
    each cell as it finishes. Raises
    :class:`CheckError` for a notebook that cannot be checked, and
    :class:`~hubprobe.sandbox.SandboxError` when no sandbox can be made.
    ``runner``: run the notebook elsewhere (a hub's server) instead of in a
    sandbox made by ``backend``; it takes the same keywords as ``run_notebook``.
    """
    nb = load_assignment(path, profile.storage_bytes)
    allowed = frozenset(
        i
        for i, c in enumerate(nb.cells, start=1)
        if c.cell_type == "code" and RAISES in c.get("metadata", {}).get("tags", [])
    )

    def after_cell(run: CellRun) -> bool:
        if on_cell is not None:
            on_cell(run)
        return stops_check(run, allowed)

    started = time.monotonic()
    if runner is None:
        assert backend is not None
        runner = functools.partial(run_notebook, backend=backend)
    try:
        run = runner(
            path, profile, cell_timeout=cell_timeout, progress=progress,
            home_files=path.parent, after_cell=after_cell,
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
        backend=run.backend,
        cells=run.cells,
        sources=sources,
        verdict=verdict,
        hints=found,
        wall_seconds=time.monotonic() - started,
        startup_seconds=run.startup_seconds,
        total_cells=len(nb.cells),
    )
