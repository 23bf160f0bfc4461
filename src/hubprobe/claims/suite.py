"""Run the probes that back the claims, and record the results."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.claims.registry import Claim, ClaimVerdict, evaluate
from hubprobe.claims.results import load_results, save_results, source_hash
from hubprobe.errors import UsageError
from hubprobe.jupyter.notebook import NotebookRun, run_notebook
from hubprobe.probe import recorded_figures
from hubprobe.profiles import Profile
from hubprobe.sandbox import Backend
from hubprobe.units import format_bytes

__all__ = ["probes_for", "record_run", "run_suite"]


def probes_for(claims: Sequence[Claim], only: Sequence[str] | None) -> list[str]:
    """Probe names to run, in registry order; ``only`` restricts to those claims."""
    known = {c.id for c in claims}
    unknown = [i for i in only or [] if i not in known]
    if unknown:
        raise UsageError(f"unknown claim id(s): {', '.join(unknown)}", "see probes/claims.toml")
    chosen = [c for c in claims if not only or c.id in only]
    return list(dict.fromkeys(c.probe for c in chosen))


def run_suite(
    claims: Sequence[Claim],
    probes_dir: Path,
    profile: Profile,
    backend: Backend,
    *,
    results_path: Path | None,
    only: Sequence[str] | None = None,
    save_notebooks: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[dict[str, Any], list[NotebookRun]]:
    """Run each needed probe once; returns the results data and the runs."""
    probes = probes_for(claims, only)
    data = load_results(results_path)
    runs = []
    for n, probe in enumerate(probes, start=1):
        path = probes_dir / f"{probe}.ipynb"
        say(f"[{n}/{len(probes)}] {probe}: running in a {backend.name} sandbox ({profile.name})")
        run = run_notebook(path, profile, backend, probe=True)
        run.figures.update(recorded_figures(run.notebook))
        mine = [c for c in claims if c.probe == probe]
        verdicts: list[ClaimVerdict] = [
            evaluate(c, run.figures, run.effective_profile, run.failures) for c in mine
        ]
        record_run(data, run, verdicts, list(claims))
        runs.append(run)
        if save_notebooks:
            nbformat.write(run.notebook, path)
        if results_path:
            save_results(results_path, data)  # after each probe: a Ctrl-C keeps what ran
        peak = format_bytes(int(run.figures.get("peak_memory_bytes", 0)))
        say(f"      {run.wall_seconds:.1f} s, peak {peak}, {run.figures['oom_kills']} OOM kill(s)")
        for v in verdicts:
            say(f"      {'ok    ' if v.passed else 'FAILED'} {v.claim}")
            for f in v.failures:
                say(f"             {f}")
    return data, runs


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def record_run(
    data: dict[str, Any], run: NotebookRun, verdicts: list[ClaimVerdict], claims: list[Claim]
) -> None:
    """Put one probe run and its claims' verdicts into ``data``."""
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    probe = run.path.stem
    digest = source_hash(run.notebook)
    data["probes"][probe] = {
        "hash": digest,
        "passed": run.passed,
        "failures": run.failures,
        "date": date,
        "profile": run.profile,
        "backend": run.backend,
        "versions": run.versions,
        "wall_seconds": round(run.wall_seconds, 2),
        "startup_seconds": round(run.startup_seconds, 2),
        "figures": _round(run.figures),
        "cells": [
            {k: v for k, v in c.metadata().items() if k != "memory_samples"} | {"cell": c.index}
            for c in run.cells
        ],
    }
    by_id = {c.id: c for c in claims}
    for v in verdicts:
        data["claims"][v.claim] = {
            "status": "verified" if v.passed else "failed",
            "statement": by_id[v.claim].statement,
            "probe": probe,
            "probe_hash": digest,
            "figures": _round(v.figures),
            "failures": list(v.failures),
            "date": date,
            "profile": run.profile,
            "backend": run.backend,
            "versions": run.versions,
        }
