"""The runner for real: a Jupyter server in the sandbox, kernels killed for real."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nbformat
import pytest

from hubprobe.jupyter.notebook import run_notebook
from hubprobe.probe import recorded_figures
from hubprobe.profiles import Profile, load_profile
from hubprobe.sandbox import Backend

pytestmark = pytest.mark.sandbox

ALLOC = "b = bytearray(400 * 2**20)"  # past SMALL's limit


@pytest.fixture(scope="module")
def small() -> Profile:
    """256 MiB: quick kills, same code paths as 2 GiB."""
    return dataclasses.replace(
        load_profile("curriculum-guide"), name="small", memory_limit_bytes=256 * 2**20
    )


def notebook(tmp_path: Path, *cells: nbformat.NotebookNode) -> Path:
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def code(src: str, *tags: str, timeout: float | None = None) -> nbformat.NotebookNode:
    meta: dict[str, object] = {"tags": list(tags)} if tags else {}
    if timeout:
        meta["hubprobe"] = {"timeout": timeout}
    return nbformat.v4.new_code_cell(src, metadata=meta)


def test_kills_restarts_and_judging(tmp_path: Path, small: Profile, backend: Backend) -> None:
    path = notebook(
        tmp_path,
        nbformat.v4.new_markdown_cell("# counted as cell 1"),
        code("x = 1\nfrom hubprobe.probe import record\nrecord(a=1)\nprint('hello')"),
        code("raise ValueError('allowed')", "raises-exception"),
        code(ALLOC, "expect-kill"),
        code("from hubprobe.probe import record\nrecord(x_alive='x' in globals(), a=2)"),
        code(ALLOC),  # killed without the tag: a failure, but the run goes on
        code("print('after')"),
    )
    before = path.read_text()
    run = run_notebook(path, small, backend)
    assert path.read_text() == before, "the notebook on disk must not change"
    outcomes = {c.index: c.outcome for c in run.cells}
    assert outcomes == {2: "ok", 3: "error", 4: "killed", 5: "ok", 6: "killed", 7: "ok"}
    assert run.failures == ["cell 6: the kernel was killed unexpectedly (restarting)"]
    assert recorded_figures(run.notebook)["a"] == 2
    assert recorded_figures(run.notebook)["x_alive"] is False
    assert run.figures["oom_kills"] >= 2
    assert run.figures["restarts"] == 2
    assert run.figures["server_survived"] is True
    killed = run.cells[2]
    assert killed.seconds_to_restarting is not None
    assert killed.seconds_to_usable is not None
    assert killed.seconds_to_usable >= killed.seconds_to_restarting
    assert killed.peak_memory_bytes == 256 * 2**20
    assert run.cells[0].outputs[-1] == {
        "output_type": "stream",
        "name": "stdout",
        "text": "hello\n",
    }
    cell_meta = run.notebook.cells[3].metadata["hubprobe"]
    assert cell_meta["outcome"] == "killed"
    # In [n] as JupyterLab shows it: a killed cell has none, a new kernel counts from 1.
    counts = [c.execution_count for c in run.notebook.cells if c.cell_type == "code"]
    assert counts == [1, 2, None, 1, None, 1]


def test_expected_kill_that_does_not_happen_fails(
    tmp_path: Path, small: Profile, backend: Backend
) -> None:
    path = notebook(
        tmp_path,
        code("y = 1", "expect-kill"),
        code("1 / 0"),
        code("print('never')"),
    )
    run = run_notebook(path, small, backend)
    assert run.failures == [
        "cell 1 is tagged expect-kill but the kernel was not killed (ok)",
        "cell 2 raised ZeroDivisionError",
    ]
    assert [c.outcome for c in run.cells] == ["ok", "error", "not-run"]


def test_cell_timeout(tmp_path: Path, small: Profile, backend: Backend) -> None:
    path = notebook(tmp_path, code("import time\ntime.sleep(60)", timeout=1.5), code("print(1)"))
    run = run_notebook(path, small, backend, probe=True)
    assert [c.outcome for c in run.cells] == ["timeout", "not-run"]
    assert run.failures[0].startswith("cell 1 timed out")
    assert run.cells[0].wall_seconds < 10


def test_home_files_and_kernel_extensions(tmp_path: Path, small: Profile, backend: Backend) -> None:
    data = tmp_path / "course"
    data.mkdir()
    (data / "grades.csv").write_text("a,b\n1,2\n")
    path = notebook(
        tmp_path,
        code(
            "import os\nfrom hubprobe.probe import record\n"
            "record(csv=open('grades.csv').read(), cwd_is_home=os.getcwd() == os.environ['HOME'],"
            " extensions=sorted(get_ipython().extension_manager.loaded))"
        ),
    )
    nb = nbformat.read(path, as_version=4)
    nb.metadata["hubprobe"] = {"ipython_extensions": ["autoreload"]}
    nbformat.write(nb, path)
    run = run_notebook(path, small, backend, home_files=data, probe=True)
    assert run.failures == []
    assert recorded_figures(run.notebook)["csv"] == "a,b\n1,2\n"
    assert recorded_figures(run.notebook)["cwd_is_home"] is True
    assert "IPython.extensions.autoreload" in recorded_figures(run.notebook)["extensions"]
