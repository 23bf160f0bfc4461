"""The verdict rules, the heaviest cells and the hints, on made-up cell runs."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from hubprobe.check.verdict import (
    EXIT_CODES,
    JOBLIB_WORKERS_CODE,
    Hint,
    asks_for_workers,
    exit_code,
    heaviest_by_memory,
    heaviest_by_time,
    hints,
    judge,
    memory_rise,
    stops_check,
)
from hubprobe.jupyter.cells import CellRun

MiB = 2**20
LIMIT = 1000 * MiB


def cell(
    index: int,
    outcome: str = "ok",
    *,
    peak: int = 100 * MiB,
    start: int | None = None,
    wall: float = 0.1,
    oom: int = 0,
    error: str | None = None,
) -> CellRun:
    samples = [(0.0, start if start is not None else peak)]
    outputs = []
    if error:
        name, _, value = error.partition(": ")
        outputs = [{"output_type": "error", "ename": name, "evalue": value, "traceback": []}]
    return CellRun(
        index=index, outcome=outcome, peak_memory_bytes=peak, memory_samples=samples,
        wall_seconds=wall, oom_kills=oom, error_name=error and error.split(":")[0],
        outputs=outputs,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("peak", "kind"),
    [(799 * MiB, "fits"), (800 * MiB, "tight"), (LIMIT, "tight")],
)
def test_fits_below_80_percent_tight_from_there(peak: int, kind: str) -> None:
    v = judge([cell(2), cell(4, peak=peak)], LIMIT)
    assert (v.kind, v.at_cell, v.peak_memory_bytes) == (kind, None, peak)
    assert v.headroom_bytes == LIMIT - peak
    assert v.detail.startswith(kind)


def test_the_first_cell_that_went_wrong_gives_the_verdict() -> None:
    cells = [cell(2), cell(3, "killed", peak=LIMIT, oom=1), cell(5, "error", error="NameError: x")]
    v = judge(cells, LIMIT)
    assert (v.kind, v.at_cell) == ("killed", 3)
    # Cell 5 ran after the restart (--after-kill continue): its error and the memory are said too.
    assert v.detail == (
        "killed at cell 3: out of memory (1 OOM kill); 1 cell raised (5); "
        "memory over every cell that ran: tight, peak 100%"
    )
    assert v.peak_fraction == 1.0
    assert v.headroom_bytes == 0
    stopped = judge([*cells[:2], cell(5, "not-run")], LIMIT)
    assert stopped.detail == "killed at cell 3: out of memory (1 OOM kill)"


def test_keep_going_the_first_error_names_the_verdict_and_memory_is_still_judged() -> None:
    cells = [
        cell(2),
        cell(4, "error", error="AttributeError: 'ellipsis' object has no attribute 'sort'"),
        cell(5, peak=850 * MiB),
        cell(7, "error", error="NameError: df"),
        cell(9),
    ]
    v = judge(cells, LIMIT)
    assert (v.kind, v.at_cell, v.raised, v.memory_kind) == ("error", 4, (4, 7), "tight")
    assert v.detail == (
        "error at cell 4: AttributeError: 'ellipsis' object has no attribute 'sort'; "
        "2 cells raised (4, 7); memory over every cell that ran: tight, peak 85%"
    )
    assert v.exit_code == EXIT_CODES["error"]
    one = judge([cell(2, "error", error="KeyError: 'x'"), cell(3, peak=10 * MiB)], LIMIT)
    assert (
        one.detail
        == "error at cell 2: KeyError: 'x'; memory over every cell that ran: fits, peak 10%"
    )


def test_error_names_the_exception_and_its_message() -> None:
    v = judge([cell(1), cell(4, "error", error="KeyError: 'carol'"), cell(5, "not-run")], LIMIT)
    assert (v.kind, v.at_cell, v.exit_code) == ("error", 4, EXIT_CODES["error"])
    assert v.detail == "error at cell 4: KeyError: 'carol'"


def test_an_error_in_a_raises_exception_cell_is_not_the_verdict() -> None:
    cells = [cell(2, "error", error="ValueError: on purpose"), cell(3, "timeout", wall=30.2)]
    v = judge(cells, LIMIT, allowed_errors=frozenset({2}))
    assert (v.kind, v.at_cell) == ("timeout", 3)
    assert v.detail == "timeout at cell 3: still running after 30 s"


def test_a_death_without_an_oom_kill_is_not_called_memory() -> None:
    v = judge([cell(2, "dead")], LIMIT)
    assert v.kind == "killed"
    assert "not memory" in v.detail
    v = judge([cell(2, "server-died", oom=1)], LIMIT)
    assert "whole server" in v.detail


def test_exit_codes_are_distinct_and_the_worst_wins() -> None:
    assert EXIT_CODES["fits"] == 0
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    assert 1 not in EXIT_CODES.values()
    assert 2 not in EXIT_CODES.values()
    fits = judge([cell(1)], LIMIT)
    tight = judge([cell(1, peak=900 * MiB)], LIMIT)
    killed = judge([cell(1, "killed", oom=1)], LIMIT)
    assert exit_code([fits, fits]) == 0
    assert exit_code([fits, tight]) == EXIT_CODES["tight"]
    assert exit_code([killed, tight, fits]) == EXIT_CODES["killed"]
    assert exit_code([]) == 0


def test_the_check_stops_at_the_first_bad_cell() -> None:
    assert stops_check(cell(1, "killed"))
    assert stops_check(cell(1, "timeout"))
    assert stops_check(cell(1, "error"))
    assert not stops_check(cell(1, "error"), frozenset({1}))
    assert not stops_check(cell(1))


def test_heaviest_cells_rank_by_what_the_cell_added() -> None:
    load = cell(2, peak=600 * MiB, start=100 * MiB, wall=2.0)
    after = [cell(i, peak=620 * MiB, start=600 * MiB, wall=0.1 * i) for i in (3, 4, 5)]
    skipped = cell(6, "not-run", peak=0)
    cells = [load, *after, skipped]
    assert memory_rise(load) == 500 * MiB
    assert [c.index for c in heaviest_by_memory(cells)] == [2, 3, 4]
    assert [c.index for c in heaviest_by_time(cells)] == [2, 5, 4]
    assert skipped not in heaviest_by_memory(cells, n=10)


def _hints(
    sources: dict[int, str],
    cells: list[CellRun] | None = None,
    sizes: dict[str, int] | None = None,
) -> list[Hint]:
    """Hints under a 1-CPU limit on an 8-core node, with these files on disk."""
    return hints(sources, cells or [], LIMIT, 1.0, 0.05, 8, (sizes or {}).get)


def test_hint_on_n_jobs_other_than_one() -> None:
    found = _hints({
        2: "clf = RandomForestClassifier(n_jobs=-1)",
        3: "Parallel(n_jobs = 4)(delayed(f)(x) for x in xs)",
        4: "clf = LogisticRegression(n_jobs=1)\nknn = KNeighborsClassifier(n_jobs=None)",
        5: "# model = SVC(n_jobs=-1)",
    })  # fmt: skip
    assert [(h.cell, h.kind) for h in found] == [(2, "n_jobs"), (3, "n_jobs")]
    assert "n_jobs=-1" in found[0].text
    assert "1 CPU limit" in found[0].text
    assert "no faster" in found[0].text
    # Nothing was measured: what workers would do is said as a possibility only.
    assert "would take its own memory" in found[0].text


def _with_workers(index: int, workers: int, rise: int) -> CellRun:
    run = cell(index, peak=100 * MiB + rise, start=100 * MiB)
    run.inspected = json.dumps({"loky_workers": workers}) + "\n"
    return run


def test_n_jobs_hint_once_per_cause_and_true_to_what_was_measured() -> None:
    sources = dict.fromkeys((3, 5, 8), "scores = cross_val_score(model, X, y, n_jobs=-1)")
    sources[9] = "Parallel(n_jobs=4)(delayed(f)(x) for x in xs)"
    cells = [_with_workers(3, 1, 5 * MiB), _with_workers(5, 1, 40 * MiB), cell(8), cell(9)]
    found = _hints(sources, cells)
    assert [(h.cells, h.kind) for h in found] == [((3, 5, 8), "n_jobs"), ((9,), "n_jobs")]
    assert found[0].where == "cells 3, 5, 8"
    text = found[0].text
    assert "joblib ran one worker process" in text
    assert "each worker" not in text, "one worker ran: no claim about several"
    assert "cell 5 rose by 40 MiB (4% of the limit)" in text
    (many,) = _hints({2: "Parallel(n_jobs=-1)(jobs)"}, [_with_workers(2, 4, 300 * MiB)])
    assert "joblib started 4 worker processes" in many.text
    assert "cell 2 rose by 300 MiB" in many.text


def test_the_joblib_probe_code_counts_live_loky_workers() -> None:
    # The expression runs silently in the student's kernel: it must leave no name behind.
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(JOBLIB_WORKERS_CODE, namespace)  # noqa: S102 - our own constant
    assert set(namespace) == {"__builtins__"}
    assert "loky_workers" in json.loads(out.getvalue())
    assert asks_for_workers("Parallel(n_jobs=2)(jobs)")
    assert not asks_for_workers("model.fit(X, y)  # n_jobs=1 by default")


def test_above_one_cpu_the_n_jobs_hint_is_about_memory_and_the_guarantee() -> None:
    (hint,) = hints({2: "Parallel(n_jobs=-1)(jobs)"}, [], LIMIT, 4.0, 0.05, 8, {}.get)
    assert "no faster" not in hint.text
    assert "4 CPUs only 0.05 is guaranteed" in hint.text


def test_hint_on_os_cpu_count_but_not_joblibs() -> None:
    found = _hints({2: "workers = os.cpu_count()", 3: "workers = joblib.cpu_count()"})
    assert [(h.cell, h.kind) for h in found] == [(2, "cpu_count")]
    assert "8 cores" in found[0].text
    twice = _hints({2: "n = os.cpu_count()", 4: "print(os.cpu_count())"})
    assert [(h.cells, h.kind) for h in twice] == [((2, 4), "cpu_count")]


def test_hint_on_large_reads_by_file_size_or_by_memory() -> None:
    sizes = {"big.csv": 300 * MiB, "small.csv": 1 * MiB}
    found = _hints(
        {
            2: "df = pd.read_csv('big.csv')",
            3: "df2 = pd.read_csv('small.csv')",
            4: "chunks = pd.read_csv('big.csv', chunksize=100_000)",
            5: "x = np.loadtxt(path)",
            6: "y = np.loadtxt('small.csv')",
        },
        cells=[cell(5, peak=700 * MiB, start=150 * MiB), cell(6, peak=160 * MiB, start=150 * MiB)],
        sizes=sizes,
    )
    assert [(h.cell, h.kind) for h in found] == [(2, "large_read"), (5, "large_read")]
    assert "read_csv('big.csv')" in found[0].text
    assert "300 MiB on disk" in found[0].text
    assert "chunksize=" in found[0].text
    assert "grew by 550 MiB" in found[1].text


def test_no_hints_for_a_plain_notebook() -> None:
    assert _hints({2: "import numpy as np\nx = np.arange(10)\n%timeit x.sum()"}) == []


def test_fits_and_tight_are_judged_on_the_working_set_and_near_the_line_the_spread_is_said() -> (
    None
):
    cached = cell(3, peak=830 * MiB)
    cached.peak_working_set_bytes = 770 * MiB  # 60 MiB of it inactive page cache
    v = judge([cell(2), cached], LIMIT)
    assert (v.kind, v.peak_memory_bytes, v.peak_working_set_bytes) == ("fits", 830 * MiB, 770 * MiB)
    assert (
        v.detail == "fits: the peak stayed at 77% of the limit (working set; 83% with page cache)"
    )
    assert v.spread.startswith("near the 80% line: the working set peaked at 77.0% of the limit")
    far = cell(3, peak=400 * MiB)
    far.peak_working_set_bytes = 390 * MiB
    assert judge([far], LIMIT).spread == ""
