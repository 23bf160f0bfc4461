"""``hubprobe check`` for real: assignment notebooks in tests/check/ run in the sandbox.

Each notebook says in its first cell what should happen and at which cell.
The runs go through the command line as an instructor types it, except the
one that compares the reported peak with the cgroup's own high-water mark,
which needs a hand on the sandbox.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import leftovers
import nbformat
import pytest
from check_helpers import NOTEBOOKS, run_check

from hubprobe.check.run import check_notebook
from hubprobe.check.verdict import heaviest_by_memory, memory_rise
from hubprobe.profiles import load_profile
from hubprobe.sandbox import Backend, Limits, Sandbox

MiB = 2**20


hubprobe = run_check  # the command as an instructor types it


@pytest.fixture
def small(small_profile: Path) -> Path:
    return small_profile


class HighWater:
    """A backend whose sandboxes note the cgroup's peak before every reset and at the end.

    The runner resets the peak before each cell; the maximum of these
    readings is the cgroup's high-water mark over the whole run, server and
    kernel start-up included: what the cgroup saw, independently of how
    ``check`` adds its cells up.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.peaks: list[int] = []

    def create(self, limits: Limits, **kwargs: Any) -> Sandbox:
        sandbox = self.backend.create(limits, **kwargs)
        reset, close = sandbox.reset_peak, sandbox.close

        def noted_reset() -> bool:
            self.peaks.append(sandbox.reading().peak_memory_bytes)
            return reset()

        def noted_close() -> None:
            if not sandbox._closed:
                self.peaks.append(sandbox.reading().peak_memory_bytes)
            close()

        sandbox.reset_peak = noted_reset  # type: ignore[method-assign]
        sandbox.close = noted_close  # type: ignore[method-assign]
        return sandbox


@pytest.mark.sandbox
def test_fits_and_reports_the_peak_the_cgroup_saw(backend: Backend) -> None:
    watched = HighWater(backend)
    result = check_notebook(
        NOTEBOOKS / "fits.ipynb", load_profile("curriculum-guide"), watched,  # type: ignore[arg-type]
        cell_timeout=60,
    )  # fmt: skip
    v = result.verdict
    assert (v.kind, v.at_cell, v.exit_code) == ("fits", None, 0)
    assert [c.index for c in result.cells] == [2, 4, 5, 7]
    assert {c.outcome for c in result.cells} == {"ok"}
    # The cell that draws 25 million floats (about 190 MiB) is the heaviest.
    heavy = heaviest_by_memory(result.cells)[0]
    assert heavy.index == 4
    assert memory_rise(heavy) > 180 * MiB
    cgroup_peak = max(watched.peaks)
    assert abs(v.peak_memory_bytes - cgroup_peak) <= 0.10 * cgroup_peak, (
        f"reported {v.peak_memory_bytes}, cgroup high-water mark {cgroup_peak}"
    )
    assert [h.kind for h in result.hints] == ["cpu_count"]


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("notebook", "timeout", "code", "verdict", "at_cell"),
    [
        ("killed.ipynb", "60", 6, "killed", 5),
        ("raises.ipynb", "60", 5, "error", 4),
        ("times-out.ipynb", "3", 4, "timeout", 4),
        ("reads-data.ipynb", "60", 0, "fits", None),
    ],
)
def test_verdicts_cell_numbers_and_exit_codes(
    tmp_path: Path, small: Path, notebook: str, timeout: str, code: int, verdict: str,
    at_cell: int | None,
) -> None:  # fmt: skip
    out = tmp_path / "report.json"
    args = [str(NOTEBOOKS / notebook), "--profile", str(small), "--cell-timeout", timeout]
    result = hubprobe(*args, "--json", str(out))
    assert result.returncode == code, result.stderr
    report = json.loads(out.read_text())
    nb = report["notebooks"][0]
    assert (nb["verdict"], nb["at_cell"], nb["exit_code"]) == (verdict, at_cell, code)
    assert report["exit_code"] == code
    assert report["profile"]["memory_limit_bytes"] == 512 * MiB
    cells = {c["cell"]: c for c in nb["cells"]}
    if at_cell is None:
        assert {c["outcome"] for c in cells.values()} == {"ok"}
    else:
        assert cells[at_cell]["outcome"] == verdict
        assert all(c["outcome"] == "not-run" for i, c in cells.items() if i > at_cell)
        assert f"{verdict} at cell {at_cell}" in result.stdout
    if verdict == "killed":
        assert nb["peak_memory_bytes"] == 512 * MiB
        assert cells[at_cell]["oom_kills"] >= 1
    if verdict == "error":
        assert nb["detail"] == "error at cell 4: KeyError: 'carol'"


@pytest.mark.sandbox
def test_several_notebooks_and_a_self_contained_html_report(tmp_path: Path, small: Path) -> None:
    html_out, json_out = tmp_path / "report.html", tmp_path / "report.json"
    result = hubprobe(
        str(NOTEBOOKS / "reads-data.ipynb"), str(NOTEBOOKS / "raises.ipynb"),
        "--profile", str(small), "--html", str(html_out), "--json", str(json_out),
    )  # fmt: skip
    assert result.returncode == 5, "the worst verdict's code: error"
    verdicts = [nb["verdict"] for nb in json.loads(json_out.read_text())["notebooks"]]
    assert verdicts == ["fits", "error"]
    page = html_out.read_text()
    assert page.count("<svg") == 2
    assert "limit 512 MiB" in page
    for fetched in ("<script", "<link", "src=", "url("):
        assert fetched not in page, f"the report must be self-contained: {fetched}"


def _bad_input(kind: str, folder: Path) -> tuple[Path, list[str]]:
    """A notebook path and options that ``check`` must refuse before making a sandbox."""
    if kind == "missing":
        return folder / "missing.ipynb", []
    if kind == "folder":
        return folder, []
    if kind in ("text", "json-list"):
        path = folder / "hw.ipynb"
        path.write_text("my notes" if kind == "text" else "[1, 2]")
        return path, []
    if kind == "r-kernel":
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x <- c(1, 2)")])
        nb.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
        nbformat.write(nb, folder / "r.ipynb")
        return folder / "r.ipynb", []
    if kind == "profile":
        return NOTEBOOKS / "fits.ipynb", ["--profile", "no-such-hub"]
    assert kind == "report-folder"
    return NOTEBOOKS / "fits.ipynb", ["--json", "nowhere/r.json"]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "missing.ipynb: no such file"),
        ("folder", "no notebooks in it"),
        ("text", "hw.ipynb: not a notebook (not JSON)"),
        ("json-list", "hw.ipynb: not a notebook"),
        ("r-kernel", "r.ipynb: written for the 'ir' kernel"),
        ("profile", "no profile named 'no-such-hub'"),
        ("report-folder", "--json nowhere/r.json: no folder"),
    ],
)
def test_bad_input_one_line_and_nothing_left_behind(
    tmp_path: Path, kind: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path, extra = _bad_input(kind, tmp_path)
    # Its own temporary folder, so another developer's run in /tmp cannot blur the count.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    files = sorted(tmp_path.rglob("*"))
    before = leftovers.count(private_tmp)
    result = hubprobe(str(path), *extra, "--html", "r.html", env={"TMPDIR": str(private_tmp)})
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert sorted(tmp_path.rglob("*")) == files, "no report, no copy, nothing written"
    assert leftovers.count(private_tmp) == before


def test_help_explains_the_exit_codes() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "hubprobe", "check", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in (
        "0    success (check: fits",
        "3    tight",
        "4    timeout",
        "5    error",
        "6    killed",
        "2    bad input",
        "125  no sandbox",
    ):
        assert line in text


STUDENT = NOTEBOOKS / "otter" / "student" / "hw01.ipynb"


@pytest.mark.sandbox
def test_a_student_version_stops_at_its_first_blank_unless_keep_going(
    tmp_path: Path, small: Path
) -> None:
    out = tmp_path / "stop.json"
    stopped = hubprobe(str(STUDENT), "--profile", str(small), "--json", str(out))
    assert stopped.returncode == 5, stopped.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert (nb["verdict"], nb["at_cell"]) == ("error", 7)
    assert nb["detail"] == (
        "error at cell 7: AttributeError: 'ellipsis' object has no attribute 'mean'"
    )
    assert [c["cell"] for c in nb["cells"] if c["outcome"] == "not-run"] == [9, 10, 12, 13, 15]

    out = tmp_path / "keep.json"
    kept = hubprobe(str(STUDENT), "--profile", str(small), "--keep-going", "--json", str(out))
    assert kept.returncode == 5, kept.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert (nb["verdict"], nb["at_cell"], nb["cells_raised"]) == ("error", 7, [7, 15])
    assert nb["memory_verdict"] == "fits"
    assert "not-run" not in {c["outcome"] for c in nb["cells"]}, "every cell ran"
    assert {c["cell"]: c["outcome"] for c in nb["cells"]}[15] == "error"
    assert "2 cells raised (7, 15); memory over every cell that ran: fits" in nb["detail"]
    assert "MissingIDFieldWarning" not in kept.stderr


@pytest.mark.sandbox
def test_an_interrupted_run_still_writes_its_report(tmp_path: Path, small: Path) -> None:
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubprobe", "check", str(NOTEBOOKS / "times-out.ipynb"),
         "--profile", str(small), "--cell-timeout", "120", "--json", str(out),
         "--html", str(page)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    # Cell 2 finishes, cell 4 spins: interrupt then, as an impatient instructor would.
    for line in proc.stdout:
        if line.split()[:2] == ["2", "ok"]:
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert nb["verdict"] == "interrupted"
    assert nb["detail"].startswith("interrupted by SIGINT after cell 2: 1 of 3 code cells measured")
    assert [(c["cell"], c["outcome"]) for c in nb["cells"]] == [
        (2, "ok"), (4, "not-run"), (5, "not-run"),
    ]  # fmt: skip
    assert "interrupted" in page.read_text()
    assert "interrupted by SIGINT" in stdout


@pytest.mark.sandbox
def test_after_a_kill_the_run_goes_on_only_when_asked(tmp_path: Path, small: Path) -> None:
    out = tmp_path / "report.json"
    args = [str(NOTEBOOKS / "killed.ipynb"), "--profile", str(small), "--json", str(out)]
    result = hubprobe(*args, "--keep-going", "--after-kill", "continue")
    assert result.returncode == 6, result.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert (nb["verdict"], nb["at_cell"], nb["after_kill"]) == ("killed", 5, "continue")
    cells = {c["cell"]: c for c in nb["cells"]}
    # The restarted kernel lost `boot_means`: the next cell ran, and raised, as a student's would.
    assert (cells[5]["outcome"], cells[6]["outcome"], cells[6]["error_name"]) == (
        "killed", "error", "NameError",
    )  # fmt: skip
    assert nb["detail"].startswith("killed at cell 5: out of memory")
    assert "1 cell raised (6)" in nb["detail"]


@pytest.mark.sandbox
def test_near_80_percent_the_verdict_is_the_working_sets_run_after_run(
    small: Path, backend: Backend
) -> None:
    profile = load_profile(str(small))
    runs = [
        check_notebook(NOTEBOOKS / "near-80.ipynb", profile, backend, cell_timeout=60).verdict
        for _ in range(5)
    ]
    assert [v.kind for v in runs] == ["fits"] * 5
    for v in runs:
        # The file it wrote is page cache: raw usage goes past the line, the working set does not.
        assert 0.70 <= v.working_set_fraction < 0.8, v
        assert v.peak_fraction >= 0.8, v
        assert v.spread.startswith("near the 80% line")
    spread = max(v.working_set_fraction for v in runs) - min(v.working_set_fraction for v in runs)
    assert spread < 0.02, [v.working_set_fraction for v in runs]


@pytest.mark.sandbox
def test_a_failed_network_call_is_said_to_work_on_the_hub(tmp_path: Path, small: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import urllib.request"),
        nbformat.v4.new_code_cell(
            "urllib.request.urlopen('http://example.org/data.csv', timeout=10).read()"
        ),
    ]
    path = tmp_path / "downloads.ipynb"
    nbformat.write(nb, path)
    result = hubprobe(str(path), "--profile", str(small), "--json", str(tmp_path / "r.json"))
    assert result.returncode == 5, result.stderr  # the cell did raise: verdict error
    report = json.loads((tmp_path / "r.json").read_text())
    (hint,) = [h for h in report["notebooks"][0]["hints"] if h["kind"] == "network"]
    assert hint["cell"] == 2
    assert "on the hub this cell would have reached the internet" in hint["text"]


@pytest.mark.sandbox
def test_a_notebooks_own_metadata_cannot_lift_the_profile(tmp_path: Path) -> None:
    """The notebook asks for 8 GiB and a long timeout; check keeps the 2 GiB profile."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["hubprobe"] = {"profile": {"memory_limit_bytes": 8 << 30}}
    nb.cells = [
        nbformat.v4.new_code_cell("import numpy as np"),
        nbformat.v4.new_code_cell(
            "x = np.ones(3 * 2**30 // 8)  # 3 GiB", metadata={"hubprobe": {"timeout": 3600}}
        ),
    ]
    path = tmp_path / "greedy.ipynb"
    nbformat.write(nb, path)
    result = hubprobe(
        str(path), "--profile", "curriculum-guide", "--json", str(tmp_path / "r.json")
    )
    assert result.returncode == 6, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    (notebook,) = report["notebooks"]
    assert (notebook["verdict"], notebook["at_cell"]) == ("killed", 2)
    assert report["profile"]["memory_limit_bytes"] == 2 << 30
