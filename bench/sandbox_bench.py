"""Sandbox figures: set-up + teardown time, and in/out wall-time ratio.

Prints figures and ratios against the goals (set-up + teardown < 0.2 s; a
single-threaded CPU-bound job inside the 1-CPU sandbox at most 1.05x as slow
as outside). Run by ``nox -s bench``; needs a working backend (root here).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from hubprobe.profiles import DEFAULT_PROFILE, load_profile
from hubprobe.sandbox import Limits, get_backend

JOB = "s = 0\nfor i in range(30_000_000): s += i * i\n"


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--backend")
    parser.add_argument("--repeat", type=int, default=20, help="set-up/teardown repeats")
    parser.add_argument("--job-repeat", type=int, default=3, help="CPU job repeats each side")
    args = parser.parse_args()

    limits = Limits.from_profile(load_profile(args.profile))
    # The real container beside the imitation it replaces, in one run.
    names = [args.backend] if args.backend else ["oci", "cgroup1"]
    for name in names:
        backend = get_backend(name)
        status = backend.check()
        if not status.usable:
            print(f"backend {name}: not usable here ({status.reason})")
            continue
        print(f"backend {backend.name}, profile {args.profile}")

        # 1. Set-up + teardown: create, run `true` through the bootstrap, tear down;
        #    minus what `true` costs outside, which is not the sandbox's doing.
        create, run, close, bare = [], [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            sb = backend.create(limits)
            t1 = time.perf_counter()
            sb.spawn(["true"])
            sb.wait()
            t2 = time.perf_counter()
            sb.close()
            t3 = time.perf_counter()
            bare.append(_timed(lambda: subprocess.run(["true"], check=True)))
            create.append(t1 - t0)
            run.append(t2 - t1)
            close.append(t3 - t2)
        med = statistics.median
        overhead = med(create) + med(run) - med(bare) + med(close)
        print(
            f"set-up {med(create) * 1000:.1f} ms + namespace bootstrap {(med(run) - med(bare)) * 1000:.1f} ms"
            f" + teardown {med(close) * 1000:.1f} ms = {overhead * 1000:.1f} ms"
            f" (median of {args.repeat}; goal < 200 ms: {'met' if overhead < 0.2 else 'NOT met'})"
        )

        # 2. The same CPU-bound job inside and outside, interleaved so drift hits both.
        inside, outside = [], []
        argv = [sys.executable, "-c", JOB]
        for _ in range(args.job_repeat):
            outside.append(_timed(lambda a=argv: subprocess.run(a, check=True)))
            with backend.create(limits) as sb:
                t0 = time.perf_counter()
                sb.spawn(argv)
                sb.wait()
                inside.append(time.perf_counter() - t0)
        ratio = med(inside) / med(outside)
        print(
            f"CPU-bound job: inside {med(inside):.3f} s, outside {med(outside):.3f} s,"
            f" ratio {ratio:.3f} (median of {args.job_repeat}; goal <= 1.05: "
            f"{'met' if ratio <= 1.05 else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
