"""otter-grader assignments: check the solution as the students' finished work would run.

Data 8 and Data 100 write assignments as ``otter assign`` master notebooks:
raw ``# BEGIN QUESTION`` / ``# BEGIN SOLUTION`` / ``# BEGIN TESTS`` cells
around the solution and the tests. The released student version has ``...``
where the answers go, and raises at the first blank, so nothing after it is
measured. The master is the one to check, through the view otter itself
makes of it: solutions in, prompts and tests out. That view comes from
otter-grader's own transformer (``otter.assign.notebook_transformer``),
installed with ``hubprobe[otter]``; the format is not re-implemented here.

What otter's transformer cannot give is left to us: its grading machinery
cells (``import otter``, ``grader.check(...)``, export) are not part of the
work a student's answers do, so they are left out, and with
``public_tests`` each question's public tests (as otter parsed them) run in
a cell of our own after the question, with doctest as otter's OK format
does. Cell numbers are mapped back to the master's, where the instructor
reads them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.errors import UsageError

__all__ = ["STUDENT_HINT", "SolutionView", "first_blank", "is_master", "solution_view"]

_BOUNDARY = re.compile(r"#\s+(begin|end)\s+(question|solution|tests|prompt)\b", re.IGNORECASE)
_CONFIG = re.compile(r"#\s+assignment\s+config\b", re.IGNORECASE)
_NAME = re.compile(r"^\s*name:\s*(\S+)", re.MULTILINE)
# A placeholder left for the student: a line that is `...`, or `name = ...`.
_BLANK = re.compile(r"^\s*(?:[\w.\[\]'\"]+\s*=\s*)?\.\.\.\s*(?:#.*)?$", re.MULTILINE)

STUDENT_HINT = (
    "this is the student version of an otter-grader assignment (answers left as ...): it "
    "raises at the first blank and nothing after it is measured; check the master notebook, "
    "with the solutions, instead (or use --keep-going to measure the rest)"
)


def _first_line(cell: nbformat.NotebookNode) -> str:
    src = cell.source.strip()
    if cell.cell_type == "markdown" and src.startswith("```otter"):
        src = src.removeprefix("```otter").strip()
    return src.splitlines()[0] if src else ""


def _is_block(cell: nbformat.NotebookNode) -> bool:
    if cell.cell_type not in ("raw", "markdown"):
        return False
    line = _first_line(cell)
    return bool(_BOUNDARY.match(line) or _CONFIG.match(line))


def is_master(nb: nbformat.NotebookNode) -> bool:
    """Whether the notebook is in the ``otter assign`` format (a master notebook)."""
    return any(_is_block(c) for c in nb.cells)


def first_blank(nb: nbformat.NotebookNode) -> int | None:
    """The first cell of a student version with a ``...`` blank, or None.

    Only where otter left its marks (its metadata, an ``import otter`` cell or
    its answer-cell tag), so a notebook that merely uses ``...`` is not taken
    for one.
    """
    otter_made = "otter" in nb.metadata or any(
        c.cell_type == "code"
        and ("import otter" in c.source or "otter_answer_cell" in c.metadata.get("tags", []))
        for c in nb.cells
    )
    if not otter_made:
        return None
    for i, c in enumerate(nb.cells, start=1):
        if c.cell_type == "code" and _BLANK.search(c.source):
            return i
    return None


@dataclasses.dataclass(frozen=True)
class SolutionView:
    notebook: nbformat.NotebookNode
    numbers: dict[int, int]  # cell in the view -> cell in the master
    note: str


@contextlib.contextmanager
def _in(folder: Path) -> Iterator[None]:
    # otter reads a config_file named in the notebook relative to the master's folder.
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


#: One cell per question: its public tests, as otter parsed them, run in the kernel.
_TESTS_CELL = """\
# hubprobe: the public tests of {name}, as otter-grader parsed them from the master
def __hubprobe_otter_tests(name, bodies, ok_format):
    import doctest, inspect, io
    failed = []
    for i, body in enumerate(bodies, 1):
        if ok_format:
            runner = doctest.DocTestRunner(
                optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
            )
            test = doctest.DocTestParser().get_doctest(body, globals(), name, None, 0)
            said = io.StringIO()
            if runner.run(test, out=said.write, clear_globs=False).failed:
                failed.append(f"test {{i}}: " + " ".join(said.getvalue().split())[-160:])
        else:
            space = {{}}
            exec(body, globals(), space)
            test = next(v for v in space.values() if callable(v))
            args = inspect.signature(test).parameters
            try:
                test(**{{p: globals()[p] for p in args if p in globals()}})
            except AssertionError as exc:
                failed.append(f"test {{i}}: {{exc}}")
    if failed:
        raise AssertionError(
            f"{{name}}: {{len(failed)}} of {{len(bodies)}} public tests failed: " + "; ".join(failed)
        )
    print(f"{{name}}: {{len(bodies)}} public test(s) passed")
__hubprobe_otter_tests({name!r}, {bodies!r}, {ok_format!r})
del __hubprobe_otter_tests
"""


def _master_positions(nb: nbformat.NotebookNode) -> dict[str, int]:
    """Question name -> the master's cell where its tests end (where our test cell stands)."""
    out: dict[str, int] = {}
    name = None
    for i, c in enumerate(nb.cells, start=1):
        if c.cell_type not in ("raw", "markdown"):
            continue
        m = _BOUNDARY.match(_first_line(c))
        if not m:
            continue
        kind = (m[1].lower(), m[2].lower())
        if kind == ("begin", "question"):
            found = _NAME.search(c.source)
            name = found[1] if found else None
        elif kind in (("end", "tests"), ("end", "question")) and name is not None:
            out.setdefault(name, i)
    return out


def solution_view(nb: nbformat.NotebookNode, path: Path, *, public_tests: bool) -> SolutionView:
    """The master as its solutions run, through otter-grader's own transformer."""
    try:
        # otter's imports (ipylab, traitlets) warn about their own deprecations: not the user's.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from otter.assign.assignment import Assignment
            from otter.assign.notebook_transformer import NotebookTransformer
            from otter.assign.tests_manager import AssignmentTestsManager
    except ImportError as exc:
        raise UsageError(
            f"{path}: an otter-grader master notebook (otter assign format), and otter-grader is "
            "not installed here",
            "install hubprobe[otter], whose otter-grader reads that format",
        ) from exc
    master = copy.deepcopy(nb)
    master.nbformat_minor = max(int(master.get("nbformat_minor", 5)), 5)  # otter keeps ids then
    number_of = {c.get("id"): i for i, c in enumerate(master.cells, start=1)}
    positions = _master_positions(master)
    assignment = Assignment()
    assignment.master = path.resolve()
    tests = AssignmentTestsManager(assignment)
    transformer = NotebookTransformer(assignment, tests)
    factory = transformer.cell_factory

    def test_cells(question: Any) -> list[nbformat.NotebookNode]:
        # The tests otter read for this question (its manager keeps them by name).
        cases = getattr(tests, "_tests_by_question", {}).get(question.name, [])
        bodies = [tc.body for tc in cases if not tc.hidden]
        if not public_tests or not bodies:
            return []
        cell = nbformat.v4.new_code_cell(_TESTS_CELL.format(
            name=question.name, bodies=bodies, ok_format=bool(assignment.tests.ok_format),
        ))  # fmt: skip
        cell["id"] = f"hubprobe-tests-{question.name}"
        number_of[cell["id"]] = positions.get(question.name, 0)
        return [cell]

    # otter's grading machinery is not the students' work: no init, check-all or export cells.
    factory.create_init_cells = list
    factory.create_check_all_cells = list
    factory.create_export_cells = list
    factory.create_check_cells = test_cells
    try:
        with _in(path.resolve().parent), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            view = transformer.transform_notebook(master).transformed_nb
    except Exception as exc:  # otter's own format errors have no common base but Exception
        said = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UsageError(
            f"{path}: otter-grader cannot read it as a master notebook ({said})",
            "run `otter assign` on it to see what is wrong",
        ) from exc
    numbers = {
        i: number_of.get(c.get("id"), i) for i, c in enumerate(view.cells, start=1)
    }  # fmt: skip
    said = "public tests run after each question" if public_tests else "tests not run"
    note = (
        "an otter-grader master notebook: checked as its solutions run, through otter's own "
        f"transformer (solutions in, prompts, tests and grader cells out; {said}); cell numbers "
        "are the master's"
    )
    return SolutionView(nbformat.from_dict(view), numbers, note)
