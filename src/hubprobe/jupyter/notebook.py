"""Run a notebook cell by cell through a real Jupyter server in a sandbox.

One sandbox and one server per notebook, so every notebook starts from a
fresh session, as a student's does. Cells tagged ``expect-kill`` pass only if
the kernel is killed while they run; ``raises-exception`` cells may raise.
Anything else that goes wrong is a failure, listed with the cell number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import platform
import shutil
import signal
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import websocket

from hubprobe import interrupts
from hubprobe.jupyter.api import ApiError, KernelSocket, ServerAPI
from hubprobe.jupyter.cells import (
    KERNEL_DIED,
    CellRun,
    Meter,
    Outcome,
    execute_cell,
    wait_usable,
)
from hubprobe.jupyter.server import JupyterServer
from hubprobe.profiles import Profile
from hubprobe.sandbox import Backend, Limits

__all__ = ["NotebookRun", "aggregate", "read_quietly", "run_cells", "run_notebook", "versions"]

EXPECT_KILL = "expect-kill"
RAISES = "raises-exception"
STOPPING = ("error", "timeout", "server-died", "dead")


@dataclasses.dataclass
class NotebookRun:
    path: Path
    cells: list[CellRun]
    failures: list[str]
    #: What the runner observed (kills, restarts, peak); probes add what they record.
    figures: dict[str, Any]
    versions: dict[str, str]
    backend: str
    profile: str
    #: The profile the probe really ran under (a notebook may override fields).
    effective_profile: Profile
    wall_seconds: float
    startup_seconds: float
    notebook: nbformat.NotebookNode
    #: What ``closing_code`` printed, if it was given and the kernel was there to run it.
    closing_output: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def versions(kernel_info: dict[str, Any] | None, server_version: str) -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    lang = (kernel_info or {}).get("language_info", {})
    return {
        "python": platform.python_version(),
        "jupyter_server": server_version,
        "ipykernel": dist("ipykernel"),
        "kernel_python": str(lang.get("version", "")),
        "kernel_ipython": str((kernel_info or {}).get("implementation_version", "")),
        "jupyter_resource_usage": dist("jupyter-resource-usage"),
        "hubprobe": dist("hubprobe"),
    }


def aggregate(cells: list[CellRun], server_alive: bool) -> dict[str, Any]:
    """The runner's own figures, beside what the probe recorded."""
    killed = [c for c in cells if c.outcome in KERNEL_DIED]
    first = killed[0] if killed else None
    return {
        "oom_kills": sum(c.oom_kills for c in cells),
        "restarts": sum(c.kernel_statuses.count("restarting") for c in cells),
        "kernel_statuses": sorted({s for c in cells for s in c.kernel_statuses}),
        "cells_killed": [c.index for c in killed],
        "peak_memory_bytes": max((c.peak_memory_bytes for c in cells), default=0),
        "seconds_to_restarting": first.seconds_to_restarting if first else None,
        "seconds_to_usable": first.seconds_to_usable if first else None,
        "memory_mentioned": any(c.memory_mentioned for c in killed),
        "server_survived": server_alive,
        "cpu_seconds": sum(c.cpu_seconds for c in cells),
        "throttled_seconds": sum(c.throttled_seconds for c in cells),
    }


def run_notebook(
    path: Path,
    profile: Profile,
    backend: Backend,
    *,
    cell_timeout: float = 120.0,
    progress: Callable[[str], None] | None = None,
    home_files: Path | None = None,
    after_cell: Callable[[CellRun], bool] | None = None,
    probe: bool = False,
    notebook: nbformat.NotebookNode | None = None,
    keep_going: bool = False,
    kernel_name: str = "python3",
    kernel_path: str = "",
    home_extra: Mapping[str, str] | None = None,
    home_only: Sequence[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    expose: Sequence[Path] = (),
    after_code: Callable[[CellRun, str], str | None] | None = None,
    closing_code: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> NotebookRun:
    """Execute ``path`` under ``profile``'s limits; the notebook on disk is not changed.

    ``home_files``: a folder copied into the private home first (the files an
    assignment reads). Notebook metadata ``hubprobe.ipython_extensions`` lists
    IPython extensions every kernel loads, as a hub's image would configure.
    ``after_cell``: called with each finished cell (progress); returning True
    ends the run there, the remaining code cells recorded as not-run.
    ``probe``: honour the notebook's ``hubprobe`` metadata (profile fields,
    variables to unset, kernel extensions, per-cell timeouts); only for our
    own probe notebooks, never for a notebook someone else wrote.

    ``notebook``: run this (already read) notebook instead of reading ``path``.
    ``keep_going``: an error or a timeout does not end the run (as nbconvert's
    ``--allow-errors``); only ``after_cell`` and a kernel that is gone do.
    ``kernel_name``/``kernel_path``: the kernelspec to start and its working
    directory, relative to the home. ``home_extra``: files (path relative to
    the home -> text) written into the home, such as a kernelspec.
    ``home_only``: copy only these files of ``home_files`` (paths relative to
    it; what git lists), not the whole folder.
    ``env``: added to the server's and so the kernels' environment (None
    unsets). ``expose``: host paths the kernel must be able to read (an
    interpreter's prefix), passed to the backend. ``after_code``: given a
    finished cell and its source, code to run silently right after it, whose
    printed output is kept in ``CellRun.inspected``; ``closing_code`` likewise
    once after the last cell, kept in ``NotebookRun.closing_output``.
    ``stop``: polled while a cell runs (several times a second); once it says
    True the run is interrupted as by Ctrl-C and its sandbox torn down (the
    suite runs two notebooks in threads, which get no signals of their own).
    """
    nb = notebook if notebook is not None else read_quietly(path)
    # Only our own probes may change how they are run; a notebook under `check`
    # is untrusted, and its metadata must not lift the profile or the timeout.
    meta = nb.metadata.get("hubprobe", {}) if probe else {}
    if meta.get("profile"):
        # A probe may need another OOM scope than the profile's (oom-whole-server).
        profile = dataclasses.replace(profile, **meta["profile"])
    unset: dict[str, str | None] = dict.fromkeys(meta.get("unset_env", []))
    unset.update(env or {})
    started = time.monotonic()
    with backend.create(Limits.from_profile(profile), expose=expose) as sandbox:
        logdir = sandbox.scratch  # goes with the sandbox, also when hubprobe is killed
        seed = _seed_home(
            logdir / "home", home_files, meta.get("ipython_extensions", []),
            home_extra or {}, home_only,
        )  # fmt: skip
        server = JupyterServer(sandbox, logdir / "server.log", env=unset, seed=seed)
        api = server.start()
        cells, failures, info, startup, closing_output = run_cells(
            nb, api, sandbox, _stoppable(server.alive, stop), started=started,
            cell_timeout=cell_timeout,
            progress=progress, after_cell=after_cell, probe=probe, keep_going=keep_going,
            kernel_name=kernel_name, kernel_path=kernel_path, after_code=after_code,
            closing_code=closing_code,
        )  # fmt: skip
        alive = server.alive()
    figures = aggregate(cells, alive)
    return NotebookRun(
        path=path,
        cells=cells,
        failures=failures,
        figures=figures,
        versions=versions(info, server.version),
        backend=backend.name,
        profile=profile.name,
        effective_profile=profile,
        wall_seconds=time.monotonic() - started,
        startup_seconds=startup,
        notebook=nb,
        closing_output=closing_output,
    )


def _stoppable(alive: Callable[[], bool], stop: Callable[[], bool] | None) -> Callable[[], bool]:
    if stop is None:
        return alive

    def check() -> bool:
        if stop():
            raise interrupts.Interrupted(signal.SIGINT)
        return alive()

    return check


def run_cells(
    nb: nbformat.NotebookNode,
    api: ServerAPI,
    meter: Meter,
    server_alive: Callable[[], bool],
    *,
    started: float,
    cell_timeout: float = 120.0,
    progress: Callable[[str], None] | None = None,
    after_cell: Callable[[CellRun], bool] | None = None,
    probe: bool = False,
    keep_going: bool = False,
    kernel_name: str = "python3",
    kernel_path: str = "",
    after_code: Callable[[CellRun, str], str | None] | None = None,
    closing_code: str | None = None,
    delete_kernel: bool = False,
) -> tuple[list[CellRun], list[str], dict[str, Any] | None, float, str | None]:
    """Run ``nb``'s code cells in a new kernel of ``api``'s server (see run_notebook).

    The same for a sandboxed server and a hub's: ``meter`` reads memory, CPU
    and OOM kills where they can be read, ``server_alive`` says whether the
    server is still there. The cells' outputs and metadata are written into
    ``nb``. Returns (cells, failures, kernel_info, seconds from ``started``
    until the kernel answered, the closing code's output).
    """
    say = progress or (lambda _msg: None)
    cells: list[CellRun] = []
    failures: list[str] = []
    kernel_id = api.start_kernel(kernel_name, kernel_path)
    sock: KernelSocket | None = api.connect(kernel_id)
    assert sock is not None
    info = sock.kernel_info(timeout=60)
    startup = time.monotonic() - started
    stop = False
    closing_output: str | None = None
    try:
        for index, cell in enumerate(nb.cells, start=1):
            if cell.cell_type != "code" or stop or sock is None:
                if cell.cell_type == "code":
                    cells.append(CellRun(index=index, outcome=Outcome.NOT_RUN))
                continue
            tags = set(cell.get("metadata", {}).get("tags", []))
            timeout = float(
                cell.get("metadata", {}).get("hubprobe", {}).get("timeout", cell_timeout)
                if probe
                else cell_timeout
            )
            say(f"cell {index}")
            run = execute_cell(meter, api, sock, index, cell.source, timeout, server_alive)
            if run.outcome == Outcome.KILLED:
                returned = time.monotonic()
                sock.close()
                sock, state = wait_usable(api, kernel_id)
                # From the cell's start until the notebook answers again.
                run.seconds_to_usable = run.wall_seconds + time.monotonic() - returned
                if sock is None:
                    run.outcome = Outcome.DEAD
                    run.kernel_statuses.append(state)
            if after_code is not None and sock is not None and run.outcome not in KERNEL_DIED:
                code = after_code(run, cell.source)
                if code:
                    run.inspected = _silently(sock, code)
            cells.append(run)
            cell.outputs = [nbformat.from_dict(o) for o in run.outputs]
            cell.execution_count = run.execution_count
            cell.metadata.setdefault("hubprobe", {}).update(run.metadata())
            _judge(run, tags, failures)
            if keep_going:
                # Only a kernel that is gone ends it; a restarted one goes on, if asked.
                stop = run.outcome in (Outcome.DEAD, Outcome.SERVER_DIED)
            else:
                stop = run.outcome in STOPPING and not (run.outcome == "error" and RAISES in tags)
            if after_cell is not None and after_cell(run):
                stop = True
        if closing_code and sock is not None and server_alive():
            closing_output = _silently(sock, closing_code)
    finally:
        if sock is not None:
            sock.close()
        if delete_kernel:  # a hub's server outlives the run; a sandbox's does not
            with contextlib.suppress(ApiError, OSError):
                api.delete_kernel(kernel_id)
    return cells, failures, info, startup, closing_output


def read_quietly(path: Path) -> nbformat.NotebookNode:
    """Read a notebook as version 4, normalised without nbformat's warnings.

    A notebook saved by an older Jupyter lacks cell ids; nbformat then warns
    (``MissingIDFieldWarning``, several lines) on every read. The ids are
    added here, silently: they change nothing that runs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nb: nbformat.NotebookNode = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.setdefault("id", uuid.uuid4().hex[:8])
    return nb


def _silently(sock: KernelSocket, code: str, timeout: float = 30.0) -> str | None:
    """Run our own code in the kernel without touching its history; its printed text."""
    try:
        outputs = sock.execute(code, timeout=timeout, silent=True)
    except (TimeoutError, RuntimeError, OSError, websocket.WebSocketException):
        return None
    return "".join(str(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")


def _seed_home(
    seed: Path,
    files: Path | None,
    extensions: list[str],
    extra: Mapping[str, str],
    only: Sequence[str] | None = None,
) -> Path | None:
    """What to copy into the private home before the server starts, if anything."""
    if files is None and not extensions and not extra:
        return None
    if files is not None and only is not None:
        seed.mkdir(parents=True, exist_ok=True)
        problems: list[tuple[str, str, str]] = []
        for name in only:
            target = seed / name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(files / name, target, follow_symlinks=False)
            except OSError as exc:  # gathered, as copytree does, so all are said at once
                problems.append((str(files / name), str(target), str(exc.strerror or exc)))
        if problems:
            raise shutil.Error(problems)
    elif files is not None:
        shutil.copytree(files, seed, symlinks=True)
    for relative, text in extra.items():
        target = seed / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if extensions:
        config = seed / ".ipython" / "profile_default" / "ipython_kernel_config.py"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f"c.InteractiveShellApp.extensions = {list(extensions)!r}\n")
    return seed


def _judge(run: CellRun, tags: set[str], failures: list[str]) -> None:
    killed = run.outcome in KERNEL_DIED
    where = f"cell {run.index}"
    if EXPECT_KILL in tags and not killed:
        failures.append(
            f"{where} is tagged {EXPECT_KILL} but the kernel was not killed ({run.outcome})"
        )
    elif killed and EXPECT_KILL not in tags:
        failures.append(
            f"{where}: the kernel was killed unexpectedly ({', '.join(run.kernel_statuses)})"
        )
    elif run.outcome == "error" and RAISES not in tags:
        failures.append(f"{where} raised {run.error_name}")
    elif run.outcome == "timeout":
        failures.append(f"{where} timed out after {run.wall_seconds:.0f} s")
