"""Probe-suite figures: the suite's wall time for each profile and for all of them, the
unchanged re-run, each probe's time, and the time from an out-of-memory cell's start to
the `restarting` message.

Goals (issue 13), on this 2-core machine: at most 60 s for one profile, at most 5 min
for every shipped profile, and an unchanged re-run in seconds. Run by ``nox -s bench``;
needs a working backend (root here). Writes nothing into probes/ (the re-run works on
a copy).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hubprobe.claims.freshness import current_environment
from hubprobe.claims.registry import load_claims
from hubprobe.claims.suite import run_suite
from hubprobe.jupyter.notebook import NotebookRun
from hubprobe.profiles import list_profiles, load_profile
from hubprobe.sandbox import Backend, choose_backend

PROBES = Path(__file__).resolve().parent.parent / "probes"
ONE_PROFILE_GOAL = 60.0
ALL_PROFILES_GOAL = 300.0


def _met(seconds: float, goal: float) -> str:
    return f"goal <= {goal:.0f} s: {'met' if seconds <= goal else 'NOT met'}"


def _suite(
    backend: Backend, env: dict[str, str], names: list[str]
) -> tuple[float, list[NotebookRun]]:
    start = time.perf_counter()
    _, runs = run_suite(
        load_claims(PROBES / "claims.toml"), PROBES, [load_profile(n) for n in names],
        backend, env, save=False, force=True, say=lambda _m: None,
    )  # fmt: skip
    return time.perf_counter() - start, runs


def _unchanged_rerun(backend: Backend, env: dict[str, str]) -> float:
    """`hubprobe probes` on a copy of the committed results: nothing should run."""
    with tempfile.TemporaryDirectory(prefix="hubprobe-bench-probes-") as folder:
        copy = Path(folder) / "probes"
        shutil.copytree(PROBES, copy)
        start = time.perf_counter()
        _, runs = run_suite(
            load_claims(copy / "claims.toml"), copy, [load_profile(n) for n in list_profiles()],
            backend, env, say=lambda _m: None,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    if runs:
        print(f"  (the re-run ran {len(runs)} probe(s): the committed results are not all fresh)")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", action="append", help="only these profiles")
    parser.add_argument("--backend")
    args = parser.parse_args()
    backend = choose_backend(args.backend)
    env = current_environment(backend.name)
    names = args.profile or list_profiles()
    print(f"probe suite, backend {backend.name}, two probes at a time where timings allow")
    total = 0.0
    for name in names:
        seconds, runs = _suite(backend, env, [name])
        total += seconds
        print(f"{name}: {seconds:.1f} s for {len(runs)} probes ({_met(seconds, ONE_PROFILE_GOAL)})")
        for run in sorted(runs, key=lambda r: -r.wall_seconds):
            status = "ok" if run.passed else "FAILED"
            print(
                f"  {run.path.stem:<22} {run.wall_seconds:6.1f} s"
                f"  (server + kernel start {run.startup_seconds:.1f} s) {status}"
            )
        for run in runs:
            for cell in run.cells:
                if cell.seconds_to_restarting is not None:
                    usable = cell.seconds_to_usable or float("nan")
                    print(
                        f"  {run.path.stem} cell {cell.index}: 'restarting' after "
                        f"{cell.seconds_to_restarting:.1f} s, usable again after {usable:.1f} s"
                    )
    if len(names) > 1:
        seconds, runs = _suite(backend, env, names)
        print(
            f"all {len(names)} profiles in one run: {seconds:.1f} s for {len(runs)} probes "
            f"({_met(seconds, ALL_PROFILES_GOAL)}); one profile at a time: {total:.1f} s"
        )
    rerun = _unchanged_rerun(backend, env)
    print(f"unchanged re-run (every result fresh): {rerun:.2f} s (goal: seconds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
