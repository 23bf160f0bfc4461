"""`hubprobe check` against plain `jupyter nbconvert --to notebook --execute`, and folder mode.

The same notebook, run both ways, interleaved so that drift on a shared
machine hits both: `hubprobe check` in the sandbox under the profile (a real
jupyter_server, a fresh kernel, the files copied into the home, a reading of
the cgroup every 0.1 s), nbconvert outside any sandbox. Prints the
wall-time ratio of the medians.

- `assignment`: about ten seconds of single-threaded work, as a short lab
  does (goal: ratio <= 1.2);
- `tiny`: tests/check/fits.ipynb, under a second of work, where check's
  fixed cost (starting a Jupyter server as a hub does) shows most;
- `200 cells`: two hundred small cells, where the per-cell cost shows
  (goal: ratio <= 1.5);
- `keep-going`: the otter student version with its blanks, `check
  --keep-going` against `nbconvert --allow-errors`;
- folder mode: 8 notebooks in a folder, `check DIR` (several at a time)
  against `check DIR --jobs 1` (one by one).

Single-threaded on purpose: numpy's threads would be held to the profile's
CPU limit inside and not outside, which is what check is for but not
overhead. Run by ``nox -s bench``; needs a working backend (root here).
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
GOALS = {"assignment": 1.2, "200 cells": 1.5}

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


def _write(folder: Path, name: str, sources: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in sources]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _timed(argv: list[str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if result.returncode not in ok:
        sys.exit(f"{argv[:5]} failed ({result.returncode}): {result.stderr[-500:]}")
    return took


def _check(path: Path, profile: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hubprobe", "check", str(path), "--profile", profile,
            "--cell-timeout", "600", *extra]  # fmt: skip


def _nbconvert(path: Path, *extra: str) -> list[str]:
    out = path.with_name(f"{path.stem}-executed.ipynb")
    return [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
            "--output", str(out), *extra, str(path)]  # fmt: skip


def _side_by_side(name: str, check: list[str], plain: list[str], repeat: int,
                  ok: tuple[int, ...], cells: int) -> None:  # fmt: skip
    inside, outside = [], []
    for _ in range(repeat):
        outside.append(_timed(plain))
        inside.append(_timed(check, ok=ok))
    med = statistics.median
    ratio = med(inside) / med(outside)
    goal = GOALS.get(name)
    said = f"; goal <= {goal}: {'met' if ratio <= goal else 'NOT met'}" if goal else ""
    print(
        f"  {name:<11} check {med(inside):5.1f} s, nbconvert {med(outside):5.1f} s, "
        f"ratio {ratio:.2f}, extra {med(inside) - med(outside):.1f} s "
        f"({(med(inside) - med(outside)) / cells * 1000:.1f} ms a cell; median of {repeat}{said})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, interleaved")
    parser.add_argument("--folder-repeat", type=int, default=1, help="runs of the folder mode")
    args = parser.parse_args()
    print(f"hubprobe check vs nbconvert --execute, profile {args.profile}")
    # The pid in the name lets the tests' leftover checks tell this live run from debris.
    with tempfile.TemporaryDirectory(prefix=f"hubprobe-{os.getpid()}-bench-check-") as tmp:
        base = Path(tmp)
        cases: dict[str, tuple[Path, int]] = {}
        for name in ("assignment", "tiny", "200 cells"):
            folder = base / name.replace(" ", "-")  # one folder each: check copies the folder
            folder.mkdir()
            if name == "assignment":
                cases[name] = (_write(folder, "assignment", ASSIGNMENT), len(ASSIGNMENT))
            elif name == "tiny":
                cases[name] = (Path(shutil.copy(ROOT / "tests/check/fits.ipynb", folder)), 4)
            else:
                small = ["x = 1"] + [f"x = x * 3 % 1_000_003 + {i}" for i in range(199)]
                cases[name] = (_write(folder, "cells200", small), 200)
        for name, (path, cells) in cases.items():
            _side_by_side(
                name, _check(path, args.profile), _nbconvert(path), args.repeat, (0, 3), cells
            )
        student = base / "student"
        student.mkdir()
        path = Path(shutil.copy(ROOT / "tests/check/otter/student/hw01.ipynb", student))
        _side_by_side(
            "keep-going", _check(path, args.profile, "--keep-going"),
            _nbconvert(path, "--allow-errors"), args.repeat, (5,), 11,
        )  # fmt: skip
        course = base / "course"
        for i in range(8):
            (course / f"week{i + 1}").mkdir(parents=True)
            shutil.copy(ROOT / "tests/check/fits.ipynb", course / f"week{i + 1}")
        together, alone = [], []
        for _ in range(args.folder_repeat):
            together.append(_timed(_check(course, args.profile), ok=(0, 3)))
            alone.append(_timed(_check(course, args.profile, "--jobs", "1"), ok=(0, 3)))
        med = statistics.median
        print(
            f"  folder mode, 8 notebooks: {med(together):5.1f} s at once (as many at a time as "
            f"the machine holds), {med(alone):5.1f} s one by one, "
            f"{med(alone) / med(together):.2f}x faster (median of {args.folder_repeat})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
