"""A whole course folder at once: found, run several at a time, one table and one report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from check_helpers import NOTEBOOKS, run_check

from hubprobe.check.course import find_notebooks, parallel_runs
from hubprobe.errors import UsageError
from hubprobe.profiles import load_profile

GiB = 2**30


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    (course / "week1").mkdir(parents=True)
    (course / "week2" / ".ipynb_checkpoints").mkdir(parents=True)
    (course / ".git").mkdir()
    shutil.copy(NOTEBOOKS / "fits.ipynb", course / "week1")
    shutil.copy(NOTEBOOKS / "reads-data.ipynb", course / "week1")
    shutil.copy(NOTEBOOKS / "rainfall.csv", course / "week1")
    shutil.copy(NOTEBOOKS / "raises.ipynb", course / "week2")
    shutil.copy(NOTEBOOKS / "raises.ipynb", course / "week2" / ".ipynb_checkpoints" / "x.ipynb")
    shutil.copy(NOTEBOOKS / "fits.ipynb", course / ".git" / "hidden.ipynb")
    return course


def test_notebooks_are_found_without_checkpoints_or_hidden_folders(tmp_path: Path) -> None:
    course = _course(tmp_path)
    found = find_notebooks([str(course)])
    assert [p.relative_to(course).as_posix() for p in found] == [
        "week1/fits.ipynb", "week1/reads-data.ipynb", "week2/raises.ipynb",
    ]  # fmt: skip
    assert find_notebooks([str(course / "week2" / "raises.ipynb"), str(course / "week2")]) == [
        course / "week2" / "raises.ipynb"
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no notebooks in it"):
        find_notebooks([str(tmp_path / "empty")])


def test_as_many_at_once_as_the_cores_and_the_memory_hold() -> None:
    one_cpu = load_profile("curriculum-guide")  # 1 CPU, 2 GiB
    assert parallel_runs(one_cpu, 8, cores=2, available_bytes=20 * GiB)[0] == 2
    assert parallel_runs(one_cpu, 8, cores=2, available_bytes=3 * GiB)[0] == 1
    assert parallel_runs(one_cpu, 1, cores=8, available_bytes=20 * GiB)[0] == 1
    datahub = load_profile("datahub")  # 4 CPUs: one at a time on 2 cores
    jobs, why = parallel_runs(datahub, 8, cores=2, available_bytes=20 * GiB)
    assert jobs == 1
    assert why.startswith("1 at a time (2 cores for 4-CPU sessions")


@pytest.mark.sandbox
def test_a_course_folder_gives_one_table_and_one_report(
    tmp_path: Path, small_profile: Path
) -> None:
    course = _course(tmp_path)
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    result = run_check(
        str(course), "--profile", str(small_profile), "--jobs", "2", "--json", str(out),
        "--html", str(page),
    )  # fmt: skip
    assert result.returncode == 5, "the worst verdict's code: error"
    report = json.loads(out.read_text())
    verdicts = {Path(nb["path"]).name: nb["verdict"] for nb in report["notebooks"]}
    assert verdicts == {"fits.ipynb": "fits", "reads-data.ipynb": "fits", "raises.ipynb": "error"}
    assert "3 notebooks, 2 at a time" in result.stderr
    for n in (1, 2, 3):
        assert f"[{n}/3]" in result.stderr
    table = result.stdout[result.stdout.index("notebook ") :].splitlines()
    assert len(table) == 4
    rows = {Path(line.split()[0]).name: line.split()[1:] for line in table[1:]}
    assert rows["raises.ipynb"][:2] == ["error", "4"]
    assert rows["fits.ipynb"][0] == "fits"
    assert rows["fits.ipynb"][-4:-2] == ["cell", "4"], "the 190 MiB draw is the heaviest"
    html = page.read_text()
    assert html.count('<a href="#notebook-') == 3
    assert html.count("<svg") == 3
    assert 'id="notebook-3"' in html
