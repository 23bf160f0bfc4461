"""otter-grader assignments: the master checked through otter's own transformer."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from check_helpers import NOTEBOOKS, run_check

from hubprobe.check.otter import first_blank, is_master, solution_view

MASTER = NOTEBOOKS / "otter" / "hw01.ipynb"
STUDENT = NOTEBOOKS / "otter" / "student" / "hw01.ipynb"


def test_master_and_student_versions_are_told_apart() -> None:
    master = nbformat.read(MASTER, as_version=4)
    student = nbformat.read(STUDENT, as_version=4)
    assert is_master(master)
    assert not is_master(student)
    assert first_blank(student) == 5  # `rain = ...`
    assert first_blank(master) is None
    plain = nbformat.read(NOTEBOOKS / "fits.ipynb", as_version=4)
    assert (is_master(plain), first_blank(plain)) == (False, None)


@pytest.mark.parametrize("public_tests", [False, True])
def test_the_solution_view_keeps_solutions_drops_prompts_tests_and_grader(
    public_tests: bool,
) -> None:
    view = solution_view(nbformat.read(MASTER, as_version=4), MASTER, public_tests=public_tests)
    code = [c.source for c in view.notebook.cells if c.cell_type == "code"]
    assert not any("import otter" in s for s in code), "no grader init cell"
    assert not any("grader.check" in s for s in code)
    assert not any("BEGIN" in c.source for c in view.notebook.cells)
    assert any("rain.sort()" in s for s in code), "the solution is in"
    assert not any("HIDDEN" in s or "abs(rain.mean() - 2.0)" in s for s in code)
    tests = [s for s in code if s.startswith("# hubprobe: the public tests")]
    assert len(tests) == (3 if public_tests else 0)
    # Numbers are the master's: the solution of q1 is its 7th cell, the last cell its 35th.
    sol = next(i for i, c in enumerate(view.notebook.cells, 1) if "rain.sort()" in c.source)
    assert view.numbers[sol] == 7
    assert view.numbers[len(view.notebook.cells)] == 35
    assert "otter's own transformer" in view.note


@pytest.mark.sandbox
def test_the_master_is_checked_as_its_solutions_run(tmp_path: Path, small_profile: Path) -> None:
    out = tmp_path / "r.json"
    result = run_check(
        str(MASTER), "--profile", str(small_profile), "--otter-tests", "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert nb["verdict"] == "fits"
    cells = {c["cell"]: c for c in nb["cells"]}
    # The solutions and the public tests of q1, q2, q3 (at the end of each tests block) ran.
    assert sorted(cells) == [3, 7, 13, 15, 19, 23, 28, 32, 35]
    assert {c["outcome"] for c in cells.values()} == {"ok"}
    assert nb["cells_total"] == 35
    assert any("otter-grader master notebook" in n for n in nb["notes"])


@pytest.mark.sandbox
def test_a_student_version_gets_a_hint_to_check_the_master(
    tmp_path: Path, small_profile: Path
) -> None:
    out = tmp_path / "r.json"
    result = run_check(str(STUDENT), "--profile", str(small_profile), "--json", str(out))
    assert result.returncode == 5, result.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    (hint,) = [h for h in nb["hints"] if h["kind"] == "student_version"]
    assert hint["cell"] == 5
    assert "check the master notebook" in hint["text"]
    assert "hint, cell 5: this is the student version" in result.stdout


def test_the_public_tests_cell_fails_on_a_wrong_answer_and_passes_on_the_right_one() -> None:
    import numpy as np

    view = solution_view(nbformat.read(MASTER, as_version=4), MASTER, public_tests=True)
    (cell,) = [
        c for c in view.notebook.cells if c.source.startswith("# hubprobe: the public tests of q1")
    ]
    wrong: dict[str, object] = {"rain": np.zeros(10)}
    with pytest.raises(AssertionError, match="q1: 1 of 2 public tests failed: test 1"):
        exec(cell.source, wrong)  # noqa: S102 - our own cell, as the kernel runs it
    right: dict[str, object] = {"rain": np.sort(np.random.default_rng(0).random(5_000_000))}
    exec(cell.source, right)  # noqa: S102
    assert "__hubprobe_otter_tests" not in right, "nothing left in the student's namespace"
