"""`hubprobe check` against plain `jupyter nbconvert --to notebook --execute`.

The same notebook, run both ways in one go, interleaved so that drift on a
shared machine hits both: `hubprobe check` in the sandbox under the profile
(a real jupyter_server, a fresh kernel, the folder copied into the home, a
reading of the cgroup every 0.1 s), nbconvert outside any sandbox. Prints
the wall-time ratio of the medians. Goal: at most 1.2.

Two notebooks, because the ratio depends on how long the cells run:
check's extra cost is mostly a fixed one (starting a Jupyter server as a hub
does, which nbconvert skips). `assignment` runs about ten seconds of
single-threaded work, as a short lab does; `tiny` is tests/check/fits.ipynb,
under a second of work, where the fixed cost shows most. Single-threaded on
purpose: numpy's threads would be held to the profile's CPU limit inside and
not outside, which is what check is for but not overhead.

Run by ``nox -s bench``; needs a working backend (root here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from hubprobe.profiles import DEFAULT_PROFILE

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.2

ASSIGNMENT = [
    """\
import numpy as np

rng = np.random.default_rng(0)""",
    """\
# Monte Carlo estimate of pi, in batches
hits = 0
for _ in range(60):
    xy = rng.random((1_000_000, 2))
    hits += int(((xy**2).sum(axis=1) <= 1).sum())
print(4 * hits / 60_000_000)""",
    """\
# a random walk, step by step in Python
pos, far = 0, 0
for _ in range(4_000_000):
    pos += 1 if rng.random() < 0.5 else -1
    far = max(far, abs(pos))
print(far)""",
    """\
counts = np.bincount(rng.integers(0, 10, size=5_000_000))
print(counts)""",
]


def _assignment(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_markdown_cell("# Lab: simulation")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in ASSIGNMENT]
    path = folder / "assignment.ipynb"
    nbformat.write(nb, path)
    return path


def _timed(argv: list[str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if result.returncode not in ok:
        sys.exit(f"{argv[:4]} failed ({result.returncode}): {result.stderr[-500:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, interleaved")
    args = parser.parse_args()
    print(f"hubprobe check vs nbconvert --execute, profile {args.profile}")
    # The pid in the name lets the tests' leftover checks tell this live run from debris.
    with tempfile.TemporaryDirectory(prefix=f"hubprobe-{os.getpid()}-bench-check-") as tmp:
        notebooks = {}
        for name in ("assignment", "tiny"):
            # One folder each: check copies the notebook's folder into the home.
            folder = Path(tmp) / name
            folder.mkdir()
            if name == "assignment":
                notebooks[name] = _assignment(folder)
            else:
                notebooks[name] = Path(shutil.copy(ROOT / "tests/check/fits.ipynb", folder))
        for name, path in notebooks.items():
            out = path.with_name("executed.ipynb")
            check = [sys.executable, "-m", "hubprobe", "check", str(path), "--profile",
                     args.profile, "--timeout", "600"]  # fmt: skip
            plain = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                     "--execute", "--output", str(out), str(path)]  # fmt: skip
            inside, outside = [], []
            for _ in range(args.repeat):
                outside.append(_timed(plain))
                inside.append(_timed(check, ok=(0, 3)))  # fits or tight: it ran to the end
            med = statistics.median
            ratio = med(inside) / med(outside)
            print(
                f"  {name:<10} check {med(inside):5.1f} s, nbconvert {med(outside):5.1f} s, "
                f"ratio {ratio:.2f}, extra {med(inside) - med(outside):.1f} s "
                f"(median of {args.repeat}; goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
