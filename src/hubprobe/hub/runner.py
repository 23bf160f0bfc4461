"""Run a notebook in a user's server on a hub, cell by cell, as the sandbox runner does.

The same cell loop (:func:`hubprobe.jupyter.notebook.run_cells`) over the
hub's ``/user/NAME/api/kernels`` and its websockets; readings from the
server's own cgroup, read by the server itself (:mod:`hubprobe.hub.meter`). The files the notebook
reads are uploaded through the contents API into a fresh folder of the
home, the kernel runs there, and the folder is removed afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat

from hubprobe.hub.meter import FileMeter, KernelMeter, MeterUnavailable, ServerWatch
from hubprobe.hub.session import HubServer
from hubprobe.jupyter.api import ApiError, ServerAPI
from hubprobe.jupyter.cells import CellRun
from hubprobe.jupyter.notebook import NotebookRun, aggregate, run_cells, versions
from hubprobe.profiles import Profile

__all__ = ["run_on_hub", "upload_folder"]


def _put(api: ServerAPI, path: str, body: dict[str, object]) -> None:
    api.request("PUT", f"/api/contents/{urllib.parse.quote(path)}", body)


def upload_folder(
    api: ServerAPI, folder: Path, target: str, only: Sequence[str] | None = None
) -> None:
    """Copy ``folder`` into ``target`` (a path under the server's root) through the contents API.

    ``only``: these files of it (relative paths, what git would hand out), not all.
    """
    _put(api, target, {"type": "directory"})
    if only is not None:
        made: set[str] = set()
        for name in only:
            parts = Path(name).parts
            if any(part.startswith(".") for part in parts):
                continue  # the contents API refuses hidden files; a notebook rarely reads them
            for depth in range(1, len(parts)):
                sub = "/".join(parts[:depth])
                if sub not in made:
                    made.add(sub)
                    _put(api, f"{target}/{sub}", {"type": "directory"})
            path = folder / name
            if path.is_file() and not path.is_symlink():
                content = base64.b64encode(path.read_bytes()).decode()
                _put(api, f"{target}/{Path(name).as_posix()}",
                     {"type": "file", "format": "base64", "content": content})  # fmt: skip
        return
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in sorted(dirs):
            _put(api, f"{target}/{(rel / name).as_posix()}", {"type": "directory"})
        for name in sorted(files):
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():
                continue
            content = base64.b64encode(path.read_bytes()).decode()
            _put(api, f"{target}/{(rel / name).as_posix()}",
                 {"type": "file", "format": "base64", "content": content})  # fmt: skip


_REMOVE = (
    "import os, shutil; _d = os.getcwd(); os.chdir(os.path.expanduser('~')); shutil.rmtree(_d)"
)


def run_on_hub(
    path: Path,
    profile: Profile,
    *,
    server: HubServer,
    cell_timeout: float = 120.0,
    progress: Callable[[str], None] | None = None,
    home_files: Path | None = None,
    after_cell: Callable[[CellRun], bool] | None = None,
    probe: bool = False,
    notebook: nbformat.NotebookNode | None = None,
    keep_going: bool = False,
    kernel_name: str = "python3",
    kernel_path: str = "",
    home_only: Sequence[str] | None = None,
    after_code: Callable[[CellRun, str], str | None] | None = None,
    closing_code: str | None = None,
    **_sandbox_only: object,
) -> NotebookRun:
    """Execute ``path`` in ``server``; ``profile`` is the hub's (measured) profile.

    Takes run_notebook's keywords. What only a sandbox needs (files written
    into a fresh home, an interpreter to expose, variables for the server) is
    left out: a hub's server and image are already what they are.
    """
    nb = notebook if notebook is not None else nbformat.read(path, as_version=4)
    api = server.api
    started = time.monotonic()
    folder = f"hubprobe-{uuid.uuid4().hex[:8]}"
    if home_files is not None:
        upload_folder(api, home_files, folder, only=home_only)
    else:
        _put(api, folder, {"type": "directory"})
    meter: FileMeter | KernelMeter
    try:
        meter = FileMeter(api, folder)
    except MeterUnavailable:
        meter = KernelMeter(api, path=folder)  # a helper kernel, in the limit, while it runs
    try:
        alive = ServerWatch(api)
        cells, failures, info, startup, closing = run_cells(
            nb, api, meter, alive, started=started, cell_timeout=cell_timeout,
            progress=progress, after_cell=after_cell, probe=probe, keep_going=keep_going,
            kernel_name=kernel_name, kernel_path=f"{folder}/{kernel_path}".rstrip("/"),
            after_code=after_code, closing_code=closing_code, delete_kernel=True,
        )  # fmt: skip
        survived = alive()
        version = ""
        with contextlib.suppress(ApiError, OSError, ValueError):
            version = str(api.request("GET", "/api").get("version", ""))
    finally:
        meter.close(last=_REMOVE)  # the uploaded folder (and the meter's links) go last
    return NotebookRun(
        path=path,
        cells=cells,
        failures=failures,
        figures=aggregate(cells, survived),
        versions=versions(info, version),
        backend="hub",
        profile=profile.name,
        effective_profile=profile,
        wall_seconds=time.monotonic() - started,
        startup_seconds=startup,
        notebook=nb,
        closing_output=closing,
    )
