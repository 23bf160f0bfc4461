"""The out-of-memory notice's cost per cell (goal: under 1 ms).

Three figures, all from a real kernel of a real Jupyter server in the sandbox,
where the kernel reads its session's own cgroup files:

1. the extension's hooks alone (``pre_run_cell`` + ``post_run_cell``: what it
   adds to every cell), per call, median over many;
2. the same empty cell run by the kernel's shell (``run_cell``) with and
   without the extension, in interleaved blocks;
3. empty cells sent over the websocket as a browser does, with and without
   the extension, in interleaved blocks: the round trip dwarfs the hooks, so
   this one only shows that nothing else is added, within its noise.

Between calls in 1 and 2 the kernel idles 2 ms, as between a student's cells:
back to back, the first file reads are warm (several times faster), and
IPython's history thread, which writes each cell to SQLite, runs only when
the hooks' reads let it, so that a tight loop charges the history's writes
to the extension.

Run by ``nox -s bench``; needs a working backend (root here).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hubprobe.jupyter.api import KernelSocket
from hubprobe.jupyter.server import JupyterServer
from hubprobe.profiles import DEFAULT_PROFILE, load_profile
from hubprobe.sandbox import Limits, choose_backend

IN_KERNEL = """
import json, statistics, time
from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult
import hubprobe.notice as notice

ip = get_ipython()
n = notice._active
info = ExecutionInfo("pass", store_history=True, silent=False, shell_futures=True, cell_id=None)
result = ExecutionResult(info)


def per_call(action, count):
    spent = []
    for _ in range(count):
        time.sleep(0.002)  # idle, as between cells
        start = time.perf_counter()
        action()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent)


hooks = per_call(lambda: (n.pre_run_cell(info), n.post_run_cell(result)), {calls})
files = {{"group": n.files.group.as_posix(), "limit": n.files.limit_bytes,
         "near_limit_check": n.near is not None}}
with_ext, without = [], []
for block in range(2 * {blocks}):  # with, without, without, with, ...
    want = block % 4 in (0, 3)
    if want != (notice._active is not None):
        ip.run_line_magic("load_ext" if want else "unload_ext", "hubprobe.notice")
    side = with_ext if want else without
    side.append(per_call(lambda: ip.run_cell("pass", store_history=True), {runs}))
if notice._active is None:
    ip.run_line_magic("load_ext", "hubprobe.notice")
print(json.dumps({{"hooks": hooks, "files": files, "with": with_ext, "without": without}}))
"""


def _cells(sock: KernelSocket, count: int) -> float:
    """Seconds per cell, for ``count`` cells run one after another."""
    start = time.perf_counter()
    for _ in range(count):
        sock.execute("pass")
    return (time.perf_counter() - start) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--backend")
    parser.add_argument("--calls", type=int, default=2_000, help="hook calls")
    parser.add_argument("--runs", type=int, default=500, help="run_cell calls per block")
    parser.add_argument("--cells", type=int, default=100, help="websocket cells per block")
    parser.add_argument("--blocks", type=int, default=4, help="blocks on each side")
    args = parser.parse_args()
    backend = choose_backend(args.backend)
    profile = load_profile(args.profile)
    print(f"notice cost per cell, backend {backend.name}, profile {profile.name}")
    with (
        tempfile.TemporaryDirectory(prefix="hubprobe-bench-") as logdir,
        backend.create(Limits.from_profile(profile)) as sandbox,
    ):
        api = JupyterServer(sandbox, Path(logdir) / "server.log").start()
        sock = api.connect(api.start_kernel())
        sock.kernel_info(timeout=60)
        sock.execute("%load_ext hubprobe.notice")
        code = IN_KERNEL.format(calls=args.calls, blocks=args.blocks, runs=args.runs)
        inside = json.loads(sock.execute(code, timeout=600)[-1]["text"])
        ws_with, ws_without = [], []
        _cells(sock, args.cells // 4)  # warm up
        loaded = True
        for block in range(2 * args.blocks):
            # with, without, without, with, ...: neither side always goes first.
            want = block % 4 in (0, 3)
            if want != loaded:
                sock.execute(f"%{'load' if want else 'unload'}_ext hubprobe.notice")
                loaded = want
            (ws_with if loaded else ws_without).append(_cells(sock, args.cells))
        sock.close()
    us, files = inside["hooks"] * 1e6, inside["files"]
    print(
        f"  hooks alone: {us:.1f} us per cell (median of {args.calls}; reads "
        f"{files['group']}, limit {files['limit']}, near-limit check "
        f"{'on' if files['near_limit_check'] else 'off'}); goal < 1 ms: "
        f"{'met' if us < 1000 else 'NOT met'}"
    )
    _compare("run_cell in the kernel", inside["with"], inside["without"], args.runs, "us", 1e6)
    _compare("cells over the websocket", ws_with, ws_without, args.cells, "ms", 1e3)
    return 0


def _compare(
    what: str, with_ext: list[float], without: list[float], n: int, unit: str, scale: float
) -> None:
    def side(xs: list[float]) -> str:
        return (
            f"{statistics.median(xs) * scale:.1f} {unit} "
            f"({min(xs) * scale:.1f}-{max(xs) * scale:.1f})"
        )

    added = (statistics.median(with_ext) - statistics.median(without)) * scale
    print(
        f"  {what}, per cell: with the extension {side(with_ext)}, without {side(without)},"
        f" added {added:+.1f} {unit} (medians and ranges of {len(without)} interleaved"
        f" blocks of {n} cells)"
    )


if __name__ == "__main__":
    sys.exit(main())
