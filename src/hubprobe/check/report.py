"""What ``hubprobe check`` tells its user: terminal lines, a JSON dict, the report files.

The HTML page is drawn in :mod:`hubprobe.check.page`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubprobe.check.page import html_report, outcome_text, work_line, working_bytes
from hubprobe.check.run import CheckResult
from hubprobe.check.verdict import (
    exit_code,
    heaviest_by_memory,
    heaviest_by_time,
    memory_rise,
)
from hubprobe.files import write_atomic
from hubprobe.jupyter.cells import CellRun
from hubprobe.output import envelope, profile_dict, write_json
from hubprobe.units import format_bytes

__all__ = [
    "cell_header",
    "cell_line",
    "course_table",
    "html_report",
    "json_report",
    "summary",
    "work_line",
    "write_reports",
]


# -- terminal -----------------------------------------------------------------
def cell_header() -> str:
    return (
        f"{'cell':>6}  {'outcome':<22}{'wall':>9}{'CPU':>9}{'throttled':>11}{'peak':>11}"
        f"{'working set':>13}{'rise':>11}"
    )


def cell_line(c: CellRun) -> str:
    """One cell as it finishes: what happened, times, the session's peak and the rise."""
    if c.outcome == "not-run":
        return f"{c.index:>6}  not run"
    return (
        f"{c.index:>6}  {outcome_text(c):<22}{c.wall_seconds:>7.2f} s{c.cpu_seconds:>7.2f} s"
        f"{c.throttled_seconds:>9.2f} s{format_bytes(c.peak_memory_bytes, measured=True):>11}"
        f"{format_bytes(working_bytes(c), measured=True):>13}"
        f"{'+' + format_bytes(memory_rise(c), measured=True):>11}"
    )


def summary(r: CheckResult) -> list[str]:
    """The verdict block printed after a notebook's cells."""
    v = r.verdict
    ran = [c for c in r.cells if c.outcome != "not-run"]
    lines = [
        f"{r.path}: {v.detail}",
        (
            f"  peak {format_bytes(v.peak_memory_bytes, measured=True)} of {format_bytes(v.memory_limit_bytes)}"
            f" ({v.peak_fraction:.0%}), working set {format_bytes(v.peak_working_set_bytes or v.peak_memory_bytes, measured=True)}"
            f" ({v.working_set_fraction:.0%}), headroom {format_bytes(v.headroom_bytes, measured=True)}"
        ),
        (
            f"  {len(ran)} of {len(r.cells)} code cells ran in "
            f"{sum(c.wall_seconds for c in ran):.1f} s, after {r.startup_seconds:.1f} s to start "
            "the server and kernel"
        ),
        "  heaviest by memory: " + ", ".join(
            f"cell {c.index} +{format_bytes(memory_rise(c), measured=True)}" for c in heaviest_by_memory(r.cells)
        ),
        "  heaviest by time:   " + ", ".join(
            f"cell {c.index} {c.wall_seconds:.2f} s" for c in heaviest_by_time(r.cells)
        ),
    ]  # fmt: skip
    if v.spread:
        lines.append(textwrap.fill(
            v.spread, width=88, initial_indent="  ", subsequent_indent="    "
        ))  # fmt: skip
    if r.interpreter:
        lines.append(f"  kernel: {r.interpreter}")
    if r.packages:
        lines.append(textwrap.fill(
            ", ".join(f"{k} {v}" for k, v in sorted(r.packages.items())), width=88,
            initial_indent="  packages imported: ", subsequent_indent="    ",
        ))  # fmt: skip
    for note in r.notes:
        lines.append(textwrap.fill(
            note, width=88, initial_indent="  note: ", subsequent_indent="    "
        ))  # fmt: skip
    for h in r.hints:  # wrapped: a hint is a sentence, read in an 80-100 column terminal
        lines.append(textwrap.fill(
            h.text, width=88, initial_indent=f"  hint, {h.where}: ", subsequent_indent="    "
        ))  # fmt: skip
    return lines


def course_table(results: Sequence[CheckResult]) -> list[str]:
    """One line per notebook: verdict, peak against the limit, time, heaviest cell."""
    width = max([len(str(r.path)) for r in results] + [8])
    lines = [
        f"{'notebook':<{width}}  {'verdict':<12}{'peak / limit':>22}{'time':>9}  heaviest cell"
    ]
    for r in results:
        v = r.verdict
        where = f" {v.at_cell}" if v.at_cell is not None else ""
        heavy = heaviest_by_memory(r.cells, n=1)
        heaviest = (
            f"cell {heavy[0].index} +{format_bytes(memory_rise(heavy[0]), measured=True)}"
            if heavy
            else "-"
        )
        peak = (
            f"{format_bytes(v.peak_working_set_bytes or v.peak_memory_bytes, measured=True)} / "
            f"{format_bytes(v.memory_limit_bytes)} ({v.working_set_fraction:.0%})"
        )
        lines.append(
            f"{r.path!s:<{width}}  {v.kind + where:<12}{peak:>22}{r.wall_seconds:>7.1f} s  "
            f"{heaviest}"
        )
    return lines


# -- JSON ---------------------------------------------------------------------
def _cell_dict(c: CellRun) -> dict[str, Any]:
    return {
        "cell": c.index,
        "outcome": c.outcome,
        "error_name": c.error_name,
        "wall_seconds": round(c.wall_seconds, 3),
        "cpu_seconds": round(c.cpu_seconds, 3),
        "throttled_seconds": round(c.throttled_seconds, 3),
        "peak_memory_bytes": c.peak_memory_bytes,
        "peak_working_set_bytes": working_bytes(c),
        "memory_rise_bytes": memory_rise(c),
        "oom_kills": c.oom_kills,
    }


def _notebook_dict(r: CheckResult) -> dict[str, Any]:
    v = r.verdict
    return {
        "path": str(r.path),
        "verdict": v.kind,
        "at_cell": v.at_cell,
        "detail": v.detail,
        "cells_raised": list(v.raised),
        "memory_verdict": v.memory_kind,
        "keep_going": r.keep_going,
        "after_kill": r.after_kill,
        "exit_code": v.exit_code,
        "peak_memory_bytes": v.peak_memory_bytes,
        "memory_limit_bytes": v.memory_limit_bytes,
        "peak_fraction": round(v.peak_fraction, 4),
        "peak_working_set_bytes": v.peak_working_set_bytes or v.peak_memory_bytes,
        "working_set_fraction": round(v.working_set_fraction, 4),
        "near_threshold": v.spread,
        "headroom_bytes": v.headroom_bytes,
        "cells_total": r.total_cells,
        "kernel": r.interpreter,
        "packages": r.packages,
        "copied": r.copied,
        "kernel_cwd": r.kernel_cwd,
        "notes": list(r.notes),
        "joblib_workers": r.joblib_workers,
        "wall_seconds": round(r.wall_seconds, 3),
        "startup_seconds": round(r.startup_seconds, 3),
        "heaviest_by_memory": [
            {
                "cell": c.index,
                "memory_rise_bytes": memory_rise(c),
                "peak_memory_bytes": c.peak_memory_bytes,
            }
            for c in heaviest_by_memory(r.cells)
        ],
        "heaviest_by_time": [
            {"cell": c.index, "wall_seconds": round(c.wall_seconds, 3)}
            for c in heaviest_by_time(r.cells)
        ],
        "hints": [
            {"cell": h.cell, "cells": list(h.cells), "kind": h.kind, "text": h.text}
            for h in r.hints
        ],
        "cells": [_cell_dict(c) for c in r.cells],
    }


def json_report(results: Sequence[CheckResult], *, cell_timeout: float) -> dict[str, Any]:
    """Everything the terminal shows, for scripts; sizes in bytes, times in seconds."""
    return {
        **envelope("check"),
        "backend": results[0].backend,
        "profile": profile_dict(results[0].profile),
        "cell_timeout_seconds": cell_timeout,
        "exit_code": exit_code([r.verdict for r in results]),
        "notebooks": [_notebook_dict(r) for r in results],
    }


# -- files --------------------------------------------------------------------
def write_reports(
    results: Sequence[CheckResult],
    *,
    json_path: str | Path | None,
    html_path: str | Path | None,
    cell_timeout: float,
) -> None:
    if json_path is not None:
        write_json(json_path, json_report(results, cell_timeout=cell_timeout))
    if html_path is not None:
        write_atomic(Path(html_path), html_report(results, cell_timeout=cell_timeout))
