"""The ``hubprobe`` command line: doctor, limits, sandbox."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import signal
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from hubprobe import __version__
from hubprobe.profiles import DEFAULT_PROFILE, Profile, ProfileError, list_profiles, load_profile
from hubprobe.sandbox import BACKENDS, MANUAL_ONLY, Limits, SandboxError, choose_backend
from hubprobe.sandbox.run import RunResult, run_command
from hubprobe.session import read_session
from hubprobe.units import format_bytes

__all__ = ["main"]

#: Exit status for hubprobe's own failures in ``sandbox`` (bad profile, no
#: backend), kept apart from the command's statuses as ``docker run`` does.
TOOL_ERROR = 125


class Interrupted(Exception):
    """SIGINT/SIGTERM/SIGHUP arrived: unwind so every sandbox tears down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: FrameType | None) -> NoReturn:
    raise Interrupted(signum)


def _say(msg: str) -> None:
    print(f"hubprobe: {msg}", file=sys.stderr, flush=True)


def _fmt(n: int | None) -> str:
    return "none" if n is None else format_bytes(n)


# -- doctor -------------------------------------------------------------------
def cmd_doctor(_args: argparse.Namespace) -> int:
    usable_auto = []
    for cls in BACKENDS:
        backend = cls()
        status = backend.check()
        mark = "ok " if status.usable else "no "
        print(f"{mark} {cls.name:<8} {cls.summary}")
        print(f"      {status.reason}")
        if not status.usable and status.fix:
            print(f"      what to do: {status.fix}")
        if status.usable:
            for gap in cls.fidelity.gaps():
                print(f"      less faithful: {gap}")
            if cls.name not in MANUAL_ONLY:
                usable_auto.append(cls.name)
    if usable_auto:
        print(f"\nsandbox will use: {usable_auto[0]} (override with --backend)")
        return 0
    print("\nno backend can make a sandbox here; see 'what to do' above")
    return 1


# -- limits -------------------------------------------------------------------
def cmd_limits(args: argparse.Namespace) -> int:
    s = read_session()
    if args.json:
        print(json.dumps(dataclasses.asdict(s), indent=2))
        return 0
    cpu = "none" if s.cpu_limit is None else f"{s.cpu_limit:g} CPU"
    rows = [
        ("cgroup", "not found" if s.cgroup_version is None else f"v{s.cgroup_version}"),
        ("memory limit", _fmt(s.memory_limit_bytes)),
        ("memory used", _fmt(s.memory_usage_bytes)),
        ("memory peak", _fmt(s.memory_peak_bytes)),
        ("OOM kills", "unknown" if s.oom_kills is None else str(s.oom_kills)),
        ("CPU limit", cpu),
        ("CPU time", "unknown" if s.cpu_seconds is None else f"{s.cpu_seconds:.1f} s"),
        ("throttled", "unknown" if s.throttled_seconds is None else f"{s.throttled_seconds:.1f} s"),
        ("os.cpu_count()", str(s.os_cpu_count)),
        ("MEM_LIMIT", s.env_mem_limit or "not set"),
        ("CPU_LIMIT", s.env_cpu_limit or "not set"),
        (f"home {s.home}", f"{_fmt(s.home_size_bytes)} ({_fmt(s.home_free_bytes)} free)"),
    ]
    for key, value in rows:
        print(f"{key:<18} {value}")
    return 0


# -- sandbox ------------------------------------------------------------------
def _outcome(result: RunResult) -> str:
    if result.timed_out:
        return "stopped at the timeout"
    if result.reading.oom_kills:
        return f"{result.reading.oom_kills} OOM kill(s): out of memory"
    return "finished"


def _report(
    result: RunResult, profile: Profile, backend: str, argv: Sequence[str]
) -> dict[str, Any]:
    r = result.reading
    return {
        "hubprobe_version": __version__,
        "command": list(argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "profile": profile.name,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "oom_kills": r.oom_kills,
        "peak_memory_bytes": r.peak_memory_bytes,
        "memory_bytes": r.memory_bytes,
        "memory_limit_bytes": r.memory_limit_bytes,
        "cpu_limit": profile.cpu_limit,
        "storage_bytes": profile.storage_bytes,
        "cpu_seconds": round(r.cpu_seconds, 6),
        "throttled_seconds": round(r.throttled_seconds, 6),
        "wall_seconds": round(r.wall_seconds, 6),
    }


def cmd_sandbox(args: argparse.Namespace) -> int:
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _say("no command given; usage: hubprobe sandbox [options] -- CMD [ARGS...]")
        return 2
    try:
        profile = load_profile(args.profile)
        backend = choose_backend(args.backend)
    except (ProfileError, SandboxError) as exc:
        _say(str(exc))
        return TOOL_ERROR
    for gap in backend.fidelity.gaps():
        _say(f"note: the {backend.name} backend is less faithful than a hub: {gap}")
    if not args.quiet:
        _say(
            f"{backend.name} sandbox, profile {profile.name}: memory {_fmt(profile.memory_limit_bytes)}, "
            f"{profile.cpu_limit:g} CPU, storage {_fmt(profile.storage_bytes)}"
        )
    try:
        with backend.create(Limits.from_profile(profile)) as sandbox:
            result = run_command(sandbox, argv, timeout=args.timeout)
    except SandboxError as exc:
        _say(str(exc))
        return TOOL_ERROR
    r = result.reading
    if not args.quiet:
        _say(
            f"exit {result.exit_code} ({_outcome(result)}); peak {_fmt(r.peak_memory_bytes)} of "
            f"{_fmt(r.memory_limit_bytes)}; CPU {r.cpu_seconds:.2f} s, throttled "
            f"{r.throttled_seconds:.2f} s, wall {r.wall_seconds:.2f} s"
        )
    if args.report:
        path = Path(args.report)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(_report(result, profile, backend.name, argv), indent=2) + "\n")
        tmp.replace(path)
    return result.exit_code


# -- probes -------------------------------------------------------------------
def cmd_probes(args: argparse.Namespace) -> int:
    from hubprobe.claims import ClaimsError, load_claims
    from hubprobe.suite import run_suite

    probes_dir = Path(args.probes_dir)
    try:
        claims = load_claims(Path(args.claims or probes_dir / "claims.toml"))
        profile = load_profile(args.profile)
        backend = choose_backend(args.backend)
    except (ClaimsError, ProfileError, SandboxError) as exc:
        _say(str(exc))
        return TOOL_ERROR
    results = None if args.no_save else Path(args.results or probes_dir / "results.json")
    try:
        data, runs = run_suite(
            claims, probes_dir, profile, backend, results_path=results, only=args.only,
            save_notebooks=not args.no_save, say=_say,
        )  # fmt: skip
    except KeyError as exc:
        _say(str(exc.args[0]))
        return 2
    except SandboxError as exc:
        _say(str(exc))
        return TOOL_ERROR
    statuses = [
        data["claims"][c.id]["status"] for c in claims if c.probe in {r.path.stem for r in runs}
    ]
    failed = statuses.count("failed")
    total = sum(r.wall_seconds for r in runs)
    _say(f"{len(statuses) - failed} of {len(statuses)} claims verified in {total:.0f} s")
    return 1 if failed else 0


# -- check --------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from hubprobe.check import CheckError, check_notebook, folder_size, load_assignment
    from hubprobe.check_report import cell_header, cell_line, report_path, summary, write_reports
    from hubprobe.execution import CellRun
    from hubprobe.verdict import approx_bytes, exit_code

    # Every argument is checked before a sandbox is made: a typo costs nothing.
    try:
        if args.timeout <= 0:
            raise ValueError(f"--timeout {args.timeout:g}: give a number of seconds above 0")
        json_path = report_path("--json", args.json)
        html_path = report_path("--html", args.html)
        profile = load_profile(args.profile)
        paths = [Path(p) for p in args.notebooks]
        for path in paths:
            load_assignment(path, profile.storage_bytes)
    except (ValueError, ProfileError, CheckError) as exc:
        _say(str(exc))
        return 2
    try:
        backend = choose_backend(args.backend)
    except SandboxError as exc:
        _say(str(exc))
        return TOOL_ERROR
    for gap in backend.fidelity.gaps():
        _say(f"note: the {backend.name} backend is less faithful than a hub: {gap}")
    live = sys.stderr.isatty()

    def running(msg: str) -> None:
        if live:  # the cell number while it runs; its line replaces it when done
            print(f"\r\033[K  running {msg} ...", end="", file=sys.stderr, flush=True)

    def done(cell: CellRun) -> None:
        if live:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
        print(cell_line(cell), flush=True)

    results = []
    for path in paths:
        _say(
            f"{path}: fresh server and kernel in a {backend.name} sandbox, profile {profile.name} "
            f"(memory {_fmt(profile.memory_limit_bytes)}, {profile.cpu_limit:g} CPU, home "
            f"{_fmt(profile.storage_bytes)}), with {path.parent.resolve()} "
            f"({approx_bytes(folder_size(path.parent))}) copied into the home"
        )
        print(f"{path}\n{cell_header()}", flush=True)
        try:
            result = check_notebook(
                path, profile, backend, cell_timeout=args.timeout, on_cell=done, progress=running
            )
        except CheckError as exc:  # found only while copying the folder
            _say(str(exc))
            return 2
        except SandboxError as exc:
            _say(str(exc))
            return TOOL_ERROR
        results.append(result)
        for cell in result.cells:
            if cell.outcome == "not-run":  # after the verdict's cell: listed, not run
                print(cell_line(cell))
        print("\n".join(summary(result)) + "\n", flush=True)
    write_reports(results, json_path=json_path, html_path=html_path, cell_timeout=args.timeout)
    return exit_code([r.verdict for r in results])


# -- parser -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hubprobe",
        description="Check what a JupyterHub's CPU, memory and storage limits really do, "
        "in a sandbox whose limits match a hub profile.",
    )
    parser.add_argument("--version", action="version", version=f"hubprobe {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "doctor",
        help="which sandbox backends work here, and what to do about those that do not",
        description="List every sandbox backend, whether it works on this machine and, "
        "for each one that does not, why and what to do. Exit 0 if a sandbox can be made.",
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "limits",
        help="the limits this process lives under (cgroup, MEM_LIMIT/CPU_LIMIT, home)",
        description="Print the memory and CPU limits and usage of the current cgroup, "
        "JupyterHub's MEM_LIMIT and CPU_LIMIT, os.cpu_count() and the home's size. "
        "Works inside a hubprobe sandbox and in a terminal on a real hub.",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_limits)

    names = ", ".join(list_profiles()) or "none found"
    p = sub.add_parser(
        "sandbox",
        help="run a command under a hub profile's limits",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            f"""\
            Run CMD under a hub profile's memory, CPU and storage limits, in a
            private home of the profile's storage size, and tear everything
            down afterwards (also on Ctrl-C, SIGTERM or timeout).

            profiles: {names}
            backends: {", ".join(c.name for c in BACKENDS)} (see hubprobe doctor)

            exit status: CMD's own status (137 when it was killed for memory),
              124 when it was stopped at --timeout, 125 when hubprobe could not
              make the sandbox (bad profile, no backend), 130/143 when hubprobe
              itself was interrupted (SIGINT/SIGTERM)."""
        ),
    )
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"a profile name or a path to a TOML file (default: {DEFAULT_PROFILE})",
    )
    p.add_argument("--backend", help="force a backend instead of choosing the most faithful one")
    p.add_argument("--timeout", type=float, help="stop CMD after this many seconds")
    p.add_argument("--report", metavar="FILE", help="write a JSON report of the run")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser(
        "probes",
        help="run the probe notebooks and verify every claim",
        description="Run each probe notebook through a real Jupyter server in a sandbox "
        "matching the profile, check every claim's expectations, write the executed "
        "notebooks back and the results file. Exit 0 if every claim run is verified, "
        "1 if any failed, 125 if no sandbox could be made.",
    )
    p.add_argument("--profile", default=DEFAULT_PROFILE, help="profile name or TOML path")
    p.add_argument("--backend", help="force a sandbox backend")
    p.add_argument("--only", nargs="+", metavar="ID", help="only the probes for these claim ids")
    p.add_argument("--probes-dir", default="probes", help="where the probe notebooks are")
    p.add_argument("--claims", help="the claim registry (default: PROBES_DIR/claims.toml)")
    p.add_argument("--results", help="results file (default: PROBES_DIR/results.json)")
    p.add_argument(
        "--no-save", action="store_true",
        help="write nothing: neither the executed notebooks nor the results file",
    )  # fmt: skip
    p.set_defaults(func=cmd_probes)

    p = sub.add_parser(
        "check",
        help="will an assignment fit on the hub? run notebooks under a profile's limits",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            f"""\
            Run each NOTEBOOK as a student would: a fresh Jupyter server and
            kernel in a sandbox with the profile's memory, CPU and storage
            limits, the notebook's folder (with the files it reads) copied
            into the home, which is the kernel's working directory. Cell by
            cell: wall, CPU and throttled time, the session's peak memory and
            what happened. Per notebook: a verdict, the peak against the
            limit, the headroom, the heaviest cells and hints for the author.
            The run stops at the first cell that is killed, raises or times
            out; cells are numbered from 1 over all cells, markdown included.

            profiles: {names}

            verdicts and exit status (several notebooks: the highest):
              0  fits     the peak stayed under 80% of the memory limit
              3  tight    the peak reached 80% of the limit or more
              4  timeout  a cell ran longer than --timeout
              5  error    a cell raised an exception (not tagged raises-exception)
              6  killed   the kernel was killed (out of memory) during a cell
              2  bad input: a missing file, not a notebook, not a Python
                 notebook, an unknown profile; nothing was run
              125  no sandbox could be made here (see hubprobe doctor)
              130/143  hubprobe was interrupted (SIGINT/SIGTERM)"""
        ),
    )
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="a .ipynb file")
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"a profile name or a path to a TOML file (default: {DEFAULT_PROFILE})",
    )
    p.add_argument("--backend", help="force a sandbox backend")
    p.add_argument(
        "--timeout", type=float, default=300.0, metavar="S",
        help="stop a cell that runs longer than S seconds; verdict timeout (default: 300)",
    )  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="write a JSON report for scripts")
    p.add_argument(
        "--html", metavar="FILE",
        help="write a self-contained HTML report with a chart of memory across the cells",
    )  # fmt: skip
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupted)
    try:
        code: int = args.func(args)
    except Interrupted as exc:
        _say(f"interrupted by {exc}; sandbox torn down")
        return 128 + exc.signum
    except BrokenPipeError:
        # Output piped into `head`: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
