"""Site figures: `mkdocs build --strict` cold and warm beside the goal, and the post-build check.

- cold: no cache (mkdocs-jupyter's notebook pages and our charts, under
  .cache/): as in CI, in a fresh clone, or after `hubprobe probes` rewrote
  the probe notebooks and results;
- warm: the same build again at once, notebook pages and charts from the cache.

Both run in a fresh process, as `nox -s docs` does, so Python's imports count
too; `import nbformat` is timed alone because it once cost 2-3 s by itself
(jsonschema's rfc3987-syntax; see the bound in pyproject.toml).

Run by ``nox -s bench``; builds into a temporary directory, so site/ is left alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hubprobe.site.linkcheck import check_site

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 5.0
CACHES = [ROOT / ".cache" / "mkdocs-jupyter", ROOT / ".cache" / "hubprobe-charts"]


def _build(out: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", out],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    return time.perf_counter() - start


def _import_seconds(module: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - start


def main() -> int:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    python = _import_seconds("sys")
    nbformat = _import_seconds("nbformat") - python
    with tempfile.TemporaryDirectory(prefix="hubprobe-bench-site-") as out:
        for cache in CACHES:
            shutil.rmtree(cache, ignore_errors=True)
        cold = _build(out, env)
        warm = _build(out, env)
        start = time.perf_counter()
        problems = check_site(Path(out))
        scan = time.perf_counter() - start
        pages = len(list(Path(out).rglob("*.html")))

    def verdict(seconds: float) -> str:
        return "meets it" if seconds <= GOAL_SECONDS else f"{seconds / GOAL_SECONDS:.1f}x over"

    print(f"site build (mkdocs --strict), {pages} pages, goal <= {GOAL_SECONDS:.0f} s:")
    print(f"  cold (no cache):   {cold:5.1f} s  ({verdict(cold)})")
    print(f"  warm (from cache): {warm:5.1f} s  ({verdict(warm)})")
    print(f"  of which `import nbformat`: {nbformat:.2f} s per process")
    print(f"post-build link/anchor/offline check: {scan:.2f} s, {len(problems)} problem(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
