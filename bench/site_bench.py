"""Site figures: wall time of `mkdocs build --strict` and of the post-build check.

Run by ``nox -s bench``; builds into a temporary directory, so site/ is left alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hubprobe.site.linkcheck import check_site

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    with tempfile.TemporaryDirectory(prefix="hubprobe-bench-site-") as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", out],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        build = time.perf_counter() - start
        start = time.perf_counter()
        problems = check_site(Path(out))
        scan = time.perf_counter() - start
        pages = len(list(Path(out).rglob("*.html")))
    print(f"site build (mkdocs --strict): {build:.1f} s for {pages} pages")
    print(f"post-build link/anchor/offline check: {scan:.2f} s, {len(problems)} problem(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
