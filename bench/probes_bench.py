"""Probe-suite figures: wall time of the whole suite and of each probe, and
the time from an out-of-memory cell's start to the `restarting` message.

Goal: the whole suite in at most 90 s on a 2-core machine with the default
(2 GiB) profile. Run by ``nox -s bench``; needs a working backend (root here).
Writes nothing into probes/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hubprobe.claims.registry import load_claims
from hubprobe.claims.suite import run_suite
from hubprobe.profiles import DEFAULT_PROFILE, load_profile
from hubprobe.sandbox import choose_backend

PROBES = Path(__file__).resolve().parent.parent / "probes"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--backend")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    backend = choose_backend(args.backend)
    start = time.perf_counter()
    _, runs = run_suite(
        load_claims(PROBES / "claims.toml"), PROBES, profile, backend,
        results_path=None, save_notebooks=False, say=lambda _m: None,
    )  # fmt: skip
    total = time.perf_counter() - start
    print(f"probe suite, backend {backend.name}, profile {profile.name}")
    for run in sorted(runs, key=lambda r: -r.wall_seconds):
        status = "ok" if run.passed else "FAILED"
        print(
            f"  {run.path.stem:<22} {run.wall_seconds:6.1f} s"
            f"  (server + kernel start {run.startup_seconds:.1f} s) {status}"
        )
    print(f"whole suite: {total:.1f} s (goal <= 90 s: {'met' if total <= 90 else 'NOT met'})")
    for run in runs:
        for cell in run.cells:
            if cell.seconds_to_restarting is not None:
                usable = cell.seconds_to_usable or float("nan")
                print(
                    f"  {run.path.stem} cell {cell.index}: 'restarting' after "
                    f"{cell.seconds_to_restarting:.1f} s, usable again after {usable:.1f} s"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
