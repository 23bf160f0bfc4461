"""The ``hubprobe`` command line: doctor, limits, sandbox, probes, check.

Every command reports a problem the same way: one line on stderr and the
exit code of the :class:`~hubprobe.errors.HubprobeError` that said it (usage
errors 2, before any sandbox is made; no sandbox 125). ``--version`` and
``--help`` import nothing heavy: each command imports what it needs when it
runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hubprobe import __version__, interrupts
from hubprobe.errors import ExitCode, HubprobeError, UsageError, exit_help
from hubprobe.profiles import DEFAULT_PROFILE

if TYPE_CHECKING:
    from pathlib import Path

    from hubprobe.profiles import Profile
    from hubprobe.sandbox import Backend
    from hubprobe.sandbox.run import RunResult

__all__ = ["main"]


def _say(msg: str) -> None:
    print(f"hubprobe: {msg}", file=sys.stderr, flush=True)


def _fmt(n: int | None) -> str:
    from hubprobe.units import format_bytes

    return "none" if n is None else format_bytes(n)


def _reap_orphans() -> None:
    """What a killed hubprobe left (its watchdog was killed too): removed, and said."""
    from hubprobe.sandbox import registry

    for line in registry.reap_orphans():
        _say(line)


def _backend(name: str | None, profile: Profile) -> Backend:
    """The sandbox backend, after the profile's limits were checked against this machine."""
    from hubprobe.sandbox import Limits, choose_backend

    _reap_orphans()
    backend = choose_backend(name)  # a bad --backend is one line, before any note
    for warning in Limits.from_profile(profile).host_warnings():
        _say(f"note: {warning}")
    for gap in backend.fidelity.gaps():
        _say(f"note: the {backend.name} backend is less faithful than a hub: {gap}")
    return backend


# -- doctor -------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from hubprobe.output import destination, envelope, write_json
    from hubprobe.sandbox import BACKENDS, MANUAL_ONLY

    dest = destination("--json", args.json)
    _reap_orphans()
    text = dest != "-"  # JSON on stdout replaces the table
    rows, usable_auto = [], []
    for cls in BACKENDS:
        status = cls().check()
        gaps = cls.fidelity.gaps() if status.usable else []
        rows.append({
            "backend": cls.name, "usable": status.usable, "reason": status.reason,
            "fix": status.fix, "less_faithful": gaps,
        })  # fmt: skip
        if text:
            print(f"{'ok ' if status.usable else 'no '} {cls.name:<8} {cls.summary}")
            print(f"      {status.reason}")
            if not status.usable and status.fix:
                print(f"      what to do: {status.fix}")
            for gap in gaps:
                print(f"      less faithful: {gap}")
        if status.usable and cls.name not in MANUAL_ONLY:
            usable_auto.append(cls.name)
    chosen = usable_auto[0] if usable_auto else None
    write_json(dest, {**envelope("doctor"), "chosen": chosen, "backends": rows})
    if text:
        if chosen:
            print(f"\nsandbox will use: {chosen} (override with --backend)")
        else:
            print("\nno backend can make a sandbox here; see 'what to do' above")
    return ExitCode.OK if chosen else ExitCode.FAILED


# -- limits -------------------------------------------------------------------
def cmd_limits(args: argparse.Namespace) -> int:
    import dataclasses

    from hubprobe.cgroup.session import read_session
    from hubprobe.output import destination, envelope, write_json

    dest = destination("--json", args.json)
    s = read_session()
    write_json(dest, {**envelope("limits"), **dataclasses.asdict(s)})
    if dest == "-":
        return ExitCode.OK
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
    return ExitCode.OK


# -- sandbox ------------------------------------------------------------------
def _outcome(result: RunResult) -> str:
    if result.timed_out:
        return "stopped at the timeout"
    if result.reading.oom_kills:
        return f"{result.reading.oom_kills} OOM kill(s): out of memory"
    return "finished"


def _sandbox_report(
    result: RunResult, profile: Profile, backend: str, argv: Sequence[str]
) -> dict[str, Any]:
    from hubprobe.output import envelope, profile_dict

    r = result.reading
    return {
        **envelope("sandbox"),
        "argv": list(argv),
        "backend": backend,
        "profile": profile_dict(profile),
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "oom_kills": r.oom_kills,
        "peak_memory_bytes": r.peak_memory_bytes,
        "memory_bytes": r.memory_bytes,
        "memory_limit_bytes": r.memory_limit_bytes,
        "cpu_seconds": round(r.cpu_seconds, 6),
        "throttled_seconds": round(r.throttled_seconds, 6),
        "wall_seconds": round(r.wall_seconds, 6),
    }


def cmd_sandbox(args: argparse.Namespace) -> int:
    from hubprobe.output import destination, write_json
    from hubprobe.profiles import load_profile
    from hubprobe.sandbox import Limits
    from hubprobe.sandbox.run import run_command

    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("no command given", "usage: hubprobe sandbox [options] -- CMD [ARGS...]")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}", "give a number of seconds above 0")
    # Everything the user typed is checked before a sandbox is made.
    dest = destination("--json", args.json)
    profile = load_profile(args.profile)
    limits = Limits.from_profile(profile)
    backend = _backend(args.backend, profile)
    if not args.quiet:
        _say(
            f"{backend.name} sandbox, profile {profile.name}: memory "
            f"{_fmt(profile.memory_limit_bytes)}, {profile.cpu_limit:g} CPU, storage "
            f"{_fmt(profile.storage_bytes)}"
        )
    with backend.create(limits) as sandbox:
        result = run_command(sandbox, argv, timeout=args.timeout)
    r = result.reading
    if not args.quiet:
        _say(
            f"exit {result.exit_code} ({_outcome(result)}); peak {_fmt(r.peak_memory_bytes)} of "
            f"{_fmt(r.memory_limit_bytes)}; CPU {r.cpu_seconds:.2f} s, throttled "
            f"{r.throttled_seconds:.2f} s, wall {r.wall_seconds:.2f} s"
        )
    write_json(dest, _sandbox_report(result, profile, backend.name, argv))
    return result.exit_code


# -- probes -------------------------------------------------------------------
def cmd_probes(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hubprobe.claims.registry import load_claims
    from hubprobe.claims.suite import probes_for
    from hubprobe.profiles import list_profiles, load_profile

    probes_dir = Path(args.probes_dir)
    claims = load_claims(Path(args.claims or probes_dir / "claims.toml"))
    probes_for(claims, args.only)  # an unknown claim id is a usage error, before any sandbox
    if args.hub:
        return _probes_on_hub(args, claims, probes_dir)
    if args.json is not None and not args.status:
        raise UsageError("--json goes with --status", "add --status, or leave --json out")
    names = args.profile or list_profiles()
    profiles = [load_profile(name) for name in names]
    if args.status:
        return _probes_status(args, claims, probes_dir, profiles)
    from hubprobe.claims.freshness import current_environment
    from hubprobe.claims.suite import run_suite

    backend = _backend(args.backend, profiles[0])
    _backend_notes(profiles[1:], said=_host_warnings(profiles[0]))
    datas, runs = run_suite(
        claims, probes_dir, profiles, backend, current_environment(backend.name),
        save=not args.no_save, only=args.only, force=args.force, say=_say,
    )  # fmt: skip
    statuses = [
        e["status"] for data in datas.values() for e in data["claims"].values()
        if not args.only or e["probe"] in {c.probe for c in claims if c.id in args.only}
    ]  # fmt: skip
    failed = statuses.count("failed")
    total = sum(r.wall_seconds for r in runs)
    _say(
        f"{statuses.count('verified')} verified, {failed} failed, "
        f"{statuses.count('skipped')} skipped (claim x profile); "
        f"{len(runs)} probe run(s), {total:.0f} s of probe time"
    )
    return ExitCode.FAILED if failed else ExitCode.OK


def _host_warnings(profile: Profile) -> set[str]:
    from hubprobe.sandbox import Limits

    return set(Limits.from_profile(profile).host_warnings())


def _backend_notes(profiles: list[Profile], said: set[str]) -> None:
    """What this machine cannot hold of the other profiles' limits, each note once."""
    for profile in profiles:
        for warning in sorted(_host_warnings(profile) - said):
            _say(f"note: {warning}")
            said.add(warning)


def _probes_status(
    args: argparse.Namespace, claims: Any, probes_dir: Path, profiles: list[Profile]
) -> int:
    """Each (claim, profile): status, date, stale and why; no sandbox is made."""
    from hubprobe.claims.freshness import current_environment
    from hubprobe.claims.status import status_rows
    from hubprobe.output import destination, write_json_value

    dest = destination("--json", args.json)
    backend = args.backend or _usable_backend_name()
    rows = status_rows(claims, probes_dir, profiles, current_environment(backend), only=args.only)
    if dest is not None:
        write_json_value(dest, rows)
    if dest != "-":
        width = max(len(r["claim"]) for r in rows) if rows else 5
        for r in rows:
            stale = f"stale: {r['why']}" if r["stale"] else ""
            print(
                f"{r['claim']:<{width}}  {r['profile']:<16}  {r['status']:<9}  "
                f"{(r['date'] or '')[:10]:<10}  {stale}".rstrip()
            )
    return ExitCode.OK


def _usable_backend_name() -> str:
    """The backend a run would choose, by name; probing it makes no sandbox."""
    from hubprobe.sandbox import choose_backend

    try:
        return choose_backend(None).name
    except HubprobeError:
        return "none"


def _probes_on_hub(args: argparse.Namespace, claims: Any, probes_dir: Path) -> int:
    from pathlib import Path

    from hubprobe.hub.probes import results_name, run_hub_suite

    if args.profile and len(args.profile) > 1:
        raise UsageError("--hub measures one profile: give --profile once, or not at all")
    with _on_hub(args, (args.profile or [DEFAULT_PROFILE])[0]) as (profile, _r, _w, server):
        default = probes_dir / "hub-results" / f"{results_name(server.url)}.json"
        results = None if args.no_save else Path(args.results or default)
        if results is not None:
            results.parent.mkdir(parents=True, exist_ok=True)
        data, runs, skipped = run_hub_suite(
            claims, probes_dir, server, profile, results_path=results, only=args.only, say=_say
        )
    ran = {r.path.stem for r in runs}
    statuses = [data["claims"][c.id]["status"] for c in claims if c.probe in ran]
    failed = statuses.count("failed")
    total = sum(r.wall_seconds for r in runs)
    _say(
        f"{len(statuses) - failed} of {len(statuses)} claims verified on {server.url} in "
        f"{total:.0f} s; {len(skipped)} skipped, each with its reason"
        + (f"; results in {results}" if results else "")
    )
    return ExitCode.FAILED if failed else ExitCode.OK


# -- check --------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from hubprobe.check.course import find_notebooks, parallel_runs
    from hubprobe.check.run import prepare
    from hubprobe.output import destination
    from hubprobe.profiles import load_profile

    # Every argument is checked before a sandbox is made: a typo costs nothing.
    if args.cell_timeout <= 0:
        raise UsageError(
            f"--cell-timeout {args.cell_timeout:g}", "give a number of seconds above 0"
        )
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}", "give a number of notebooks at a time, 1 or more")
    json_path = destination("--json", args.json)
    html_path = destination("--html", args.html)
    if html_path == "-":
        raise UsageError("--html -: an HTML report goes to a file", "give a file name")
    paths = find_notebooks(args.notebooks)
    opts = {"root": args.root, "python": args.python, "env": args.env}
    profile = load_profile(args.profile)
    # Before any sandbox or hub: a bad notebook costs nothing.
    plans = [prepare(path, profile, otter_tests=args.otter_tests, **opts) for path in paths]
    with contextlib.ExitStack() as stack:
        runner: Any = None
        backend: Backend | None = None
        if args.hub:
            profile, runner, where, _server = stack.enter_context(_on_hub(args))
            plans = [prepare(p, profile, otter_tests=args.otter_tests, **opts) for p in paths]
            jobs, why = 1, "one at a time on a hub's server"
        else:
            backend = _backend(args.backend, profile)
            where = f"a {backend.name} sandbox"
        if backend is not None:
            jobs, why = parallel_runs(profile, len(plans))
            jobs = min(args.jobs, len(plans)) if args.jobs is not None else jobs
        return _check_plans(
            args, plans, profile, backend, runner, where, jobs, why, json_path, html_path
        )


def _check_plans(
    args: argparse.Namespace, plans: list[Any], profile: Profile, backend: Backend | None,
    runner: Any, where: str, jobs: int, why: str, json_path: Any, html_path: Any,
) -> int:  # fmt: skip
    import time

    from hubprobe.check.report import cell_header, cell_line, course_table, summary, write_reports
    from hubprobe.check.run import CheckResult, Plan, check_notebook, interrupted_result
    from hubprobe.check.verdict import exit_code
    from hubprobe.jupyter.cells import CellRun, Outcome

    live = sys.stderr.isatty()
    # With the JSON report on stdout, the table goes to stderr so stdout stays parseable.
    table = sys.stderr if json_path == "-" else sys.stdout
    check = {
        "cell_timeout": args.cell_timeout, "keep_going": args.keep_going,
        "after_kill": args.after_kill, "hub_cpus": args.hub_cpus,
    }  # fmt: skip

    def report(results: list[CheckResult]) -> None:
        write_reports(
            results, json_path=json_path, html_path=html_path, cell_timeout=args.cell_timeout
        )

    def intro(plan: Plan) -> str:
        return (
            f"{plan.path}: fresh server and kernel in {where}, profile "
            f"{profile.name} (memory {_fmt(profile.memory_limit_bytes)}, {profile.cpu_limit:g} "
            f"CPU, home {_fmt(profile.storage_bytes)}), with {plan.layout.describe()} copied "
            f"into the home, the kernel in {plan.layout.kernel_path or 'its top'}; "
            f"{plan.interpreter.describe()}"
        )

    if len(plans) > 1 and jobs > 1 and backend is not None:
        return _check_many(plans, profile, backend, jobs, why, table, check, report)

    results: list[CheckResult] = []
    measured: list[CellRun] = []

    def running(msg: str) -> None:
        if live:  # the cell number while it runs; its line replaces it when done
            print(f"\r\033[K  running {msg} ...", end="", file=sys.stderr, flush=True)

    def done(cell: CellRun) -> None:
        measured.append(cell)
        if live:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
        print(cell_line(cell), file=table, flush=True)

    for n, plan in enumerate(plans, start=1):
        counted = f"[{n}/{len(plans)}] " if len(plans) > 1 else ""
        _say(counted + intro(plan))
        for note in plan.notes:
            _say(f"note: {note}")
        print(f"{plan.path}\n{cell_header()}", file=table, flush=True)
        measured.clear()
        started = time.monotonic()
        try:
            result = check_notebook(
                plan.path, profile, backend, on_cell=done, progress=running, plan=plan,
                runner=runner, **check,
            )  # fmt: skip
        except interrupts.Interrupted as exc:
            # The cells measured so far are worth a report: a long run is not lost to Ctrl-C.
            if live:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            partial = interrupted_result(
                plan.path, profile, backend.name if backend else "hub", list(measured),
                signal_name=str(exc),
                wall_seconds=time.monotonic() - started, plan=plan,
            )  # fmt: skip
            print("\n".join(summary(partial)) + "\n", file=table, flush=True)
            report([*results, partial])
            raise
        results.append(result)
        for cell in result.cells:
            if cell.outcome == Outcome.NOT_RUN:  # after the verdict's cell: listed, not run
                print(cell_line(cell), file=table)
        print("\n".join(summary(result)) + "\n", file=table, flush=True)
    if len(results) > 1:
        print("\n".join(course_table(results)), file=table, flush=True)
    report(results)
    return exit_code([r.verdict for r in results])


def _check_many(
    plans: Sequence[Any], profile: Profile, backend: Backend, jobs: int, why: str, table: Any,
    check: dict[str, Any], report: Any,
) -> int:  # fmt: skip
    """Folder mode: several notebooks at a time; a line on stderr as each starts and ends."""
    import threading

    from hubprobe.check.course import Progress, run_all
    from hubprobe.check.report import course_table, summary
    from hubprobe.check.verdict import exit_code

    lock = threading.Lock()  # one notebook's block at a time on the terminal
    total = len(plans)
    finished_so_far: dict[int, Any] = {}
    _say(f"{total} notebooks, {why}; each in its own sandbox (profile {profile.name})")

    def started(i: int, plan: Any) -> None:
        _say(f"[{i + 1}/{total}] {plan.path}: started")

    def finished(i: int, plan: Any, result: Any, error: BaseException | None) -> None:
        with lock:
            if result is None:
                _say(f"[{i + 1}/{total}] {plan.path}: failed ({error})")
                return
            v = result.verdict
            finished_so_far[i] = result
            _say(f"[{i + 1}/{total}] {plan.path}: {v.kind} in {result.wall_seconds:.1f} s")
            print("\n".join(summary(result)) + "\n", file=table, flush=True)

    try:
        results = run_all(
            plans, profile, backend, jobs=jobs, progress=Progress(started, finished), **check
        )
    except interrupts.Interrupted:
        # The notebooks that finished keep their reports; the others were stopped.
        done = [finished_so_far[i] for i in sorted(finished_so_far)]
        if done:
            report(done)
        raise
    print("\n".join(course_table(results)), file=table, flush=True)
    report(results)
    return exit_code([r.verdict for r in results])


@contextlib.contextmanager
def _on_hub(
    args: argparse.Namespace, base_name: str | None = None
) -> Iterator[tuple[Profile, Any, str, Any]]:
    """The user's server on the hub, its measured profile, and the runner that uses it.

    ``base_name``: the profile that fills what cannot be measured (else --profile).
    """
    import datetime as dt
    import functools
    import tempfile
    from pathlib import Path

    from hubprobe.hub.api import check_url, read_token
    from hubprobe.hub.measured import load_measured, measure, profile_toml
    from hubprobe.hub.runner import run_on_hub
    from hubprobe.hub.session import hub_server
    from hubprobe.profiles import load_profile

    check_url(args.hub)
    read_token(args.token_file)
    base = load_profile(base_name or args.profile)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    with hub_server(args.hub, args.token_file, args.user, say=_say) as server:
        measured = measure(server.api, server.url, server.user, date)
        with tempfile.TemporaryDirectory(prefix="hubprobe-") as folder:
            profile = load_measured(
                profile_toml(measured, "measured", base), Path(folder), "measured"
            )
        _say(
            f"measured in {server.user}'s server: memory {_fmt(profile.memory_limit_bytes)}, "
            f"{profile.cpu_limit:g} CPU, home {_fmt(profile.storage_bytes)}"
        )
        yield (
            profile,
            functools.partial(run_on_hub, server=server),
            f"{server.user}'s server on {server.url}",
            server,
        )


# -- hub ----------------------------------------------------------------------
def cmd_hub(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hubprobe.hub.local import LocalHub, find_proxy
    from hubprobe.profiles import load_profile
    from hubprobe.sandbox import SandboxError

    profile = load_profile(args.profile)
    find_proxy()
    token_file = None if args.token_file is None else Path(args.token_file)
    if token_file is not None and not token_file.parent.is_dir():
        raise UsageError(f"--token-file {token_file}: no folder to write it in")
    backend = _backend(args.backend, profile)
    if backend.name != "oci" and args.backend is None:
        raise SandboxError(
            "the local hub's servers need the oci backend, which does not work here",
            "see hubprobe doctor",
        )
    hub = LocalHub(profile, port=args.port, users=tuple(args.user), token_file=token_file,
                   backend=backend.name)  # fmt: skip
    try:
        hub.start()
        print(f"JupyterHub at {hub.url} (users: {', '.join(args.user)}; any password)")
        print(f"admin API token in {hub.token_file} (readable only by you)", flush=True)
        _say(f"servers run in {backend.name} containers, profile {profile.name}; Ctrl-C stops all")
        code = hub.wait()
        _say(f"jupyterhub ended ({code}): {hub.log_tail(3)}")
        return ExitCode.HUB_UNREACHABLE
    finally:
        hub.stop()


# -- profile --hub --------------------------------------------------------------
def cmd_profile(args: argparse.Namespace) -> int:
    import datetime as dt
    import tempfile
    from pathlib import Path

    from hubprobe.files import write_atomic
    from hubprobe.hub.api import check_url, read_token
    from hubprobe.hub.measured import compare, load_measured, measure, profile_toml
    from hubprobe.hub.session import hub_server
    from hubprobe.output import destination
    from hubprobe.profiles import load_profile

    check_url(args.hub)
    read_token(args.token_file)  # a missing token is a usage error before any request
    dest = destination("--output", args.output)
    other = load_profile(args.compare) if args.compare else None
    base = other or load_profile(DEFAULT_PROFILE)
    name = Path(dest).stem if isinstance(dest, Path) else "measured"
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    with hub_server(args.hub, args.token_file, args.user, say=_say) as server:
        measured = measure(server.api, server.url, server.user, date)
    text = profile_toml(measured, name, base)
    with tempfile.TemporaryDirectory(prefix="hubprobe-") as folder:
        profile = load_measured(text, Path(folder), name)  # checked as every profile is
    if dest == "-":
        sys.stdout.write(text)
    elif isinstance(dest, Path):
        write_atomic(dest, text)
        _say(f"wrote {dest}")
    if other is None:
        return ExitCode.OK
    differences = compare(profile, other)
    for line in differences:
        print(line, file=sys.stderr if dest == "-" else sys.stdout)
    if differences:
        _say(f"{len(differences)} value(s) differ from {other.path}")
        return ExitCode.DIFFERS
    _say(f"every measured value matches {other.path}")
    return ExitCode.OK


def _add_hub(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument(
        "--hub", metavar="URL", required=required,
        help="a JupyterHub's address: run there, in the user's own server",
    )  # fmt: skip
    p.add_argument("--user", metavar="NAME", help="whose server (default: the token's user)")
    p.add_argument(
        "--token-file", metavar="FILE",
        help="a file holding the hub API token (default: $JUPYTERHUB_API_TOKEN; never on argv)",
    )  # fmt: skip


_HUB_CODES = (ExitCode.HUB_UNREACHABLE, ExitCode.HUB_AUTH, ExitCode.HUB_NO_SERVER)


# -- parser -------------------------------------------------------------------
_JSON_HELP = "write a JSON report to FILE (- for standard output)"


def _profile_names() -> str:
    from hubprobe.profiles import list_profiles

    try:
        return ", ".join(list_profiles()) or "none found"
    except HubprobeError as exc:
        return f"none found ({exc})"


class _Help(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' own line breaks (the exit-status tables)."""


def _add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"a profile name or a path to a TOML file (default: {DEFAULT_PROFILE})",
    )


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend", help="force a sandbox backend instead of the most faithful one that works"
    )


class _LazyDescription(argparse.ArgumentParser):
    """A subparser whose description lists the profiles only when --help prints it."""

    def format_help(self) -> str:
        if self.description and "{profiles}" in self.description:
            self.description = self.description.replace("{profiles}", _profile_names())
        return super().format_help()


_COMMON_CODES = (
    ExitCode.USAGE, ExitCode.NO_SANDBOX, ExitCode.SIGHUP, ExitCode.SIGINT, ExitCode.SIGQUIT,
    ExitCode.SIGTERM,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hubprobe",
        description="Check what a JupyterHub's CPU, memory and storage limits really do, "
        "in a sandbox whose limits match a hub profile.",
    )
    parser.add_argument("--version", action="version", version=f"hubprobe {__version__}")
    parser.add_argument(
        "--profiles", metavar="DIR",
        help="a folder of hub profiles (<name>.toml) to use instead of the shipped ones; "
        "also HUBPROBE_PROFILES",
    )  # fmt: skip
    sub = parser.add_subparsers(
        dest="cmd", required=True, metavar="COMMAND", parser_class=_LazyDescription
    )

    p = sub.add_parser(
        "doctor",
        help="which sandbox backends work here, and what to do about those that do not",
        formatter_class=_Help,
        description="List every sandbox backend, whether it works on this machine and, "
        "for each one that does not, why and what to do.\n\n"
        + exit_help([ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE])
        + "\n  (0: a sandbox can be made here; 1: no backend works)",
    )
    p.add_argument("--json", metavar="FILE", nargs="?", const="-", help=_JSON_HELP)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "limits",
        help="the limits this process lives under (cgroup, MEM_LIMIT/CPU_LIMIT, home)",
        formatter_class=_Help,
        description="Print the memory and CPU limits and usage of the current cgroup, "
        "JupyterHub's MEM_LIMIT and CPU_LIMIT, os.cpu_count() and the home's size. "
        "Works inside a hubprobe sandbox and in a terminal on a real hub.\n\n"
        + exit_help([ExitCode.OK, ExitCode.USAGE]),
    )
    p.add_argument(
        "--json", metavar="FILE", nargs="?", const="-",
        help=_JSON_HELP + "; --json alone prints JSON instead of the table",
    )  # fmt: skip
    p.set_defaults(func=cmd_limits)

    p = sub.add_parser(
        "sandbox",
        help="run a command under a hub profile's limits",
        formatter_class=_Help,
        description=textwrap.dedent(
            """\
            Run CMD under a hub profile's memory, CPU and storage limits, in a
            private home of the profile's storage size, and tear everything
            down afterwards (also on Ctrl-C, SIGTERM or timeout).

            profiles: {profiles}
            backends: see hubprobe doctor

            """
        )
        + exit_help(
            [ExitCode.COMMAND_TIMEOUT, *_COMMON_CODES],
            extra="CMD's own status (137 when it was killed for memory), or:",
        ),
    )
    _add_profile(p)
    _add_backend(p)
    p.add_argument(
        "--timeout", type=float, metavar="S", help="stop CMD after S seconds (exit status 124)"
    )
    p.add_argument(
        "--json", "--report", dest="json", metavar="FILE",
        help=_JSON_HELP + " (--report is the old name)",
    )  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser(
        "probes",
        help="run the probe notebooks and verify every claim, under every hub profile",
        formatter_class=_Help,
        description=textwrap.dedent(
            """\
            Run the probe notebooks through a real Jupyter server in a
            sandbox matching each hub profile (every shipped one unless
            --profile names some), check every claim's expectations, and
            keep PROBES_DIR/results/PROFILE.json with the executed
            notebooks in PROBES_DIR/runs/PROFILE/. Only what is stale or
            missing runs: a result stays fresh while its probe, the
            profile's values and the environment (backend, cgroup version,
            Python and the packages that shape the outcome) are unchanged,
            so with nothing changed no probe runs and no file is written.
            A claim that cannot hold under a profile is recorded as
            skipped, with its reason. --status lists it all and runs
            nothing.

            With --hub URL the probes run in the user's own server on that
            hub (started if needed, stopped again after), under the limits
            measured there; probes that need hubprobe's own sandbox are
            skipped, each with its reason.

            """
        )
        + exit_help([ExitCode.OK, ExitCode.FAILED, *_HUB_CODES, *_COMMON_CODES]),
    )
    p.add_argument(
        "--profile", action="append", metavar="NAME|PATH",
        help="only this profile (repeatable; default: every shipped profile)",
    )  # fmt: skip
    _add_backend(p)
    _add_hub(p)
    p.add_argument("--only", nargs="+", metavar="ID", help="only the probes for these claim ids")
    p.add_argument(
        "--force", action="store_true", help="run even the probes whose results are fresh"
    )
    p.add_argument(
        "--status", action="store_true",
        help="run nothing: list each claim and profile with its status, date and staleness",
    )  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="with --status: " + _JSON_HELP)
    p.add_argument("--probes-dir", default="probes", help="where the probe notebooks are")
    p.add_argument("--claims", help="the claim registry (default: PROBES_DIR/claims.toml)")
    p.add_argument(
        "--results",
        help="with --hub: the results file (default: PROBES_DIR/hub-results/HOST.json, "
        "beside the sandbox's PROBES_DIR/results/PROFILE.json)",
    )
    p.add_argument(
        "--no-save", action="store_true",
        help="write nothing: neither the executed notebooks nor the results file",
    )  # fmt: skip
    p.set_defaults(func=cmd_probes)

    p = sub.add_parser(
        "check",
        help="will an assignment fit on the hub? run notebooks under a profile's limits",
        formatter_class=_Help,
        description=textwrap.dedent(
            """\
            Run each NOTEBOOK (or every notebook under a folder, several at
            a time) as a student would: a fresh Jupyter server and kernel in
            a sandbox with the profile's memory, CPU and storage limits, the
            course repository around it (the git work tree's top, --root, or
            its folder) copied into the home, the kernel at the notebook's
            place in it, in hubprobe's Python or the one given. Cell by cell:
            wall, CPU and throttled time, the session's peak memory and
            working set, and what happened. Per notebook: a verdict (fits and
            tight judged on the working set, as Kubernetes judges a
            container), the peak against the limit, the heaviest cells,
            hints for the author, the interpreter and package versions. An
            otter-grader master notebook runs as its solutions would.
            The run stops at the first cell that is killed, raises or times
            out, unless --keep-going; cells are numbered from 1 over all
            cells, markdown included. Interrupted (Ctrl-C), the reports are
            still written for the cells measured.
            A notebook's own hubprobe metadata is ignored: the profile and
            the timeout are the ones given here.

            With --hub URL the notebook runs in the user's own server on that
            hub instead (started if needed, stopped again after), under the
            limits measured there, its folder uploaded into a fresh folder
            of the home and removed afterwards.

            profiles: {profiles}

            verdicts (several notebooks: the exit status of the worst):
              fits, tight, timeout, error, killed

            """
        )
        + exit_help(
            [
                ExitCode.OK, ExitCode.TIGHT, ExitCode.TIMEOUT, ExitCode.ERROR, ExitCode.KILLED,
                *_HUB_CODES, *_COMMON_CODES,
            ]
        ),
    )  # fmt: skip
    p.add_argument(
        "notebooks", nargs="+", metavar="NOTEBOOK",
        help="a .ipynb file, or a folder: every notebook under it (checkpoints and hidden "
        "folders skipped)",
    )  # fmt: skip
    _add_profile(p)
    _add_backend(p)
    _add_hub(p)
    p.add_argument(
        "--cell-timeout", "--timeout", dest="cell_timeout", type=float, default=300.0,
        metavar="S",
        help="stop a cell that runs longer than S seconds; verdict timeout (default: 300;"
        " --timeout is the old name)",
    )  # fmt: skip
    p.add_argument(
        "--keep-going", action="store_true",
        help="run every cell whatever happens before it (as nbconvert --allow-errors): each "
        "error is reported at its cell and the memory and time verdict covers every cell",
    )  # fmt: skip
    p.add_argument(
        "--after-kill", choices=("stop", "continue"), default="stop",
        help="after the kernel is killed and restarted: stop there (default) or go on with "
        "the following cells, as a student re-running would",
    )  # fmt: skip
    p.add_argument(
        "--root", metavar="DIR",
        help="copy DIR (a course repository) into the home and start the notebook at its place "
        "in it (default: the top of the git work tree holding the notebook, else its folder)",
    )  # fmt: skip
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--python", metavar="PATH",
        help="run the kernel in this interpreter (standing for the hub's image; it needs "
        "ipykernel); the server stays hubprobe's",
    )  # fmt: skip
    which.add_argument(
        "--env", metavar="DIR", help="the same for a venv or conda environment: DIR/bin/python"
    )
    p.add_argument(
        "--jobs", type=int, metavar="N",
        help="notebooks at a time (default: as many as the cores hold the profile's CPU limit "
        "and the free memory its memory limit)",
    )  # fmt: skip
    p.add_argument(
        "--hub-cpus", action="store_true",
        help="make the kernel count the hub node's cores (the profile's node.cpus), so joblib's "
        "n_jobs=-1 starts as many workers, and takes as much memory, as on the hub",
    )  # fmt: skip
    p.add_argument(
        "--otter-tests", action="store_true",
        help="for an otter-grader master notebook, also run each question's public tests",
    )  # fmt: skip
    p.add_argument("--json", metavar="FILE", help=_JSON_HELP + "; the table then goes to stderr")
    p.add_argument(
        "--html", metavar="FILE",
        help="write a self-contained HTML report with a chart of memory across the cells",
    )  # fmt: skip
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "hub",
        help="a real JupyterHub on 127.0.0.1 whose servers run in containers with a profile",
        formatter_class=_Help,
        description="Start JupyterHub on 127.0.0.1 (dummy login, configurable-http-proxy) "
        "with a spawner that starts each user's server in a hubprobe container with the "
        "profile's limits. Writes an admin API token to a file only you can read, prints "
        "the URL and that file, and on Ctrl-C stops every server and the proxy.\n\n"
        + exit_help([ExitCode.HUB_UNREACHABLE, *_COMMON_CODES]),
    )
    _add_profile(p)
    _add_backend(p)
    p.add_argument("--port", type=int, default=8000, help="the hub's port (default: 8000)")
    p.add_argument(
        "--user", action="append", metavar="NAME",
        help="a user who may log in (repeat for more; default: student)",
    )  # fmt: skip
    p.add_argument("--token-file", metavar="FILE", help="where to write the admin API token")
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser(
        "profile",
        help="measure a hub's limits in a user's server; write them as a profile, or compare",
        formatter_class=_Help,
        description="Read the limits inside a user's server on a live hub (cgroup memory "
        "limit and OOM scope, CPU quota, pids limit, home size, MEM_LIMIT/CPU_LIMIT, the "
        "node's CPUs and memory, the default interface) and write them as a profile TOML "
        "whose sources say where and when they were measured. --compare lists each value "
        "that differs from a profile: a drift alarm for a hub's CI. A server that was not "
        "running is started for the measurement and stopped again.\n\n"
        + exit_help([ExitCode.OK, ExitCode.DIFFERS, *_HUB_CODES, *_COMMON_CODES]),
    )
    _add_hub(p, required=True)
    p.add_argument("--output", "-o", metavar="FILE", default="-",
                   help="where to write the profile (default: standard output)")  # fmt: skip
    p.add_argument("--compare", metavar="PROFILE",
                   help="a profile name or TOML file to compare the measured values with")  # fmt: skip
    p.set_defaults(func=cmd_profile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "cmd", "") == "hub" and not args.user:
        args.user = ["student"]
    if args.profiles:
        os.environ["HUBPROBE_PROFILES"] = args.profiles
    interrupts.install()
    try:
        code: int = args.func(args)
    except HubprobeError as exc:
        _say(str(exc))
        return int(exc.exit_code)
    except interrupts.Interrupted as exc:
        _say(f"interrupted by {exc}; sandbox torn down")
        return 128 + exc.signum
    except BrokenPipeError:
        # Output piped into `head`: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILED
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
