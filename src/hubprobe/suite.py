"""Run the probes that back the claims, and record the results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.claims import Claim, Verdict, evaluate
from hubprobe.profiles import Profile
from hubprobe.results import load_results, record_run, save_results
from hubprobe.runner import NotebookRun, run_notebook
from hubprobe.sandbox import Backend
from hubprobe.units import format_bytes

__all__ = ["probes_for", "run_suite"]


def probes_for(claims: Sequence[Claim], only: Sequence[str] | None) -> list[str]:
    """Probe names to run, in registry order; ``only`` restricts to those claims."""
    known = {c.id for c in claims}
    unknown = [i for i in only or [] if i not in known]
    if unknown:
        raise KeyError(f"unknown claim id(s): {', '.join(unknown)}; see probes/claims.toml")
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
        run = run_notebook(path, profile, backend)
        mine = [c for c in claims if c.probe == probe]
        verdicts: list[Verdict] = [
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
