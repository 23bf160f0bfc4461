"""Run the probes that back the claims under every profile, only where a result is stale.

A (probe, profile) pair runs when it has no result, or when its probe, its
profile or the environment changed since (:mod:`hubprobe.claims.freshness`);
``force`` runs it anyway. Claims that cannot hold under a profile are
recorded as skipped with their reason, and a probe none of whose claims
applies is not run. Claims of fresh probes are judged again from their
recorded figures, so an edited expectation needs no run.

Two probes run at a time, longest first, as the machine allows: a probe with
a claim that times CPU work (``timing = true`` in the registry) under this
profile runs beside only one that mostly waits (``hubprobe.load = "light"``
in its metadata), and only when its CPU limit leaves a core free; otherwise
alone. A CPU-heavy probe (``"cpu"``) none of whose timed claims applies
here runs beside any probe but a timed one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.claims.freshness import environment_changes, probe_hash, profile_hash
from hubprobe.claims.registry import Claim, ClaimVerdict, evaluate, skip_reason
from hubprobe.claims.results import load_results, results_path, runs_dir, save_results
from hubprobe.errors import UsageError
from hubprobe.interrupts import Interrupted
from hubprobe.jupyter.cells import CellRun
from hubprobe.jupyter.notebook import NotebookRun, run_notebook
from hubprobe.probe import recorded_figures
from hubprobe.profiles import Profile
from hubprobe.sandbox import Backend
from hubprobe.units import format_bytes

__all__ = ["Job", "Plan", "plan_suite", "probe_profile", "probes_for", "record_run", "run_suite"]

#: Probes at once: two, on this kind of 2-core machine, as measured in the bench.
WORKERS = 2
#: A first guess for a probe that never ran, for the longest-first order.
UNKNOWN_SECONDS = 10.0


def probes_for(claims: Sequence[Claim], only: Sequence[str] | None) -> list[str]:
    """Probe names to run, in registry order; ``only`` restricts to those claims."""
    known = {c.id for c in claims}
    unknown = [i for i in only or [] if i not in known]
    if unknown:
        raise UsageError(f"unknown claim id(s): {', '.join(unknown)}", "see probes/claims.toml")
    chosen = [c for c in claims if not only or c.id in only]
    return list(dict.fromkeys(c.probe for c in chosen))


def probe_profile(nb: nbformat.NotebookNode, profile: Profile) -> Profile:
    """The profile a probe runs under: the hub's, with the fields its metadata overrides."""
    override = nb.metadata.get("hubprobe", {}).get("profile") or {}
    return dataclasses.replace(profile, **override) if override else profile


@dataclasses.dataclass(frozen=True)
class Job:
    profile: Profile
    probe: str
    why: str  # "no result", "probe changed", "numpy 2.3.4 -> 2.3.5", "--force"
    load: str  # "cpu", "light" or "normal"
    seconds: float  # how long it took last time


@dataclasses.dataclass
class Plan:
    jobs: list[Job]
    #: profile -> claim id -> why it does not apply there.
    skipped: dict[str, dict[str, str]]
    #: profile -> probes whose result is fresh.
    fresh: dict[str, list[str]]


def _why_stale(
    entry: dict[str, Any] | None, digest: str, profile: Profile, env: dict[str, str]
) -> str:
    if entry is None:
        return "no result"
    if entry.get("hash") != digest:
        return "probe changed"
    if entry.get("profile_hash") != profile_hash(profile):
        return "profile changed"
    return ", ".join(environment_changes(entry.get("environment", {}), env))


def plan_suite(
    claims: Sequence[Claim],
    probes_dir: Path,
    profiles: Sequence[Profile],
    env: dict[str, str],
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
) -> Plan:
    """What must run, what is skipped (and why), what is fresh: reads files, runs nothing."""
    probes = probes_for(claims, only)
    machine = int(env.get("machine_cpus") or os.cpu_count() or 1)
    plan = Plan([], {}, {})
    for profile in profiles:
        data = load_results(results_path(probes_dir, profile.name), profile.name)
        plan.skipped[profile.name] = {}
        plan.fresh[profile.name] = []
        for probe in probes:
            mine = [c for c in claims if c.probe == probe and (not only or c.id in only)]
            reasons = {c.id: skip_reason(c, profile, machine) for c in mine}
            plan.skipped[profile.name].update({k: v for k, v in reasons.items() if v})
            if all(reasons.values()):
                continue  # no claim of this probe can hold here: nothing to measure
            nb = nbformat.read(probes_dir / f"{probe}.ipynb", as_version=4)
            entry = data["probes"].get(probe)
            why = "--force" if force else _why_stale(entry, probe_hash(nb), profile, env)
            if not why:
                plan.fresh[profile.name].append(probe)
                continue
            load = str(nb.metadata.get("hubprobe", {}).get("load", "normal"))
            timed = any(c.timing for c in mine if not reasons[c.id])
            load = "cpu" if timed else ("light" if load == "light" else "normal")
            seconds = float((entry or {}).get("wall_seconds", UNKNOWN_SECONDS))
            plan.jobs.append(Job(profile, probe, why, load, seconds))
    plan.jobs.sort(key=lambda j: -j.seconds)
    return plan


def _may_join(job: Job, running: Sequence[Job], machine_cpus: int) -> bool:
    """Whether ``job`` may start beside the ``running`` ones without spoiling a timing."""
    if not running:
        return True
    if len(running) >= WORKERS:
        return False
    (other,) = running
    timed = [j for j in (job, other) if j.load == "cpu"]
    if not timed:
        return True
    if len(timed) == 2:
        return False
    partner = other if timed[0] is job else job
    return partner.load == "light" and timed[0].profile.cpu_limit <= machine_cpus - 1


def run_suite(
    claims: Sequence[Claim],
    probes_dir: Path,
    profiles: Sequence[Profile],
    backend: Backend,
    env: dict[str, str],
    *,
    save: bool = True,
    only: Sequence[str] | None = None,
    force: bool = False,
    workers: int = WORKERS,
    say: Callable[[str], None] = print,
) -> tuple[dict[str, dict[str, Any]], list[NotebookRun]]:
    """Run what is stale; returns every profile's results data and the runs made."""
    plan = plan_suite(claims, probes_dir, profiles, env, only=only, force=force)
    datas = {p.name: load_results(results_path(probes_dir, p.name), p.name) for p in profiles}
    by_name = {p.name: p for p in profiles}
    machine = int(env.get("machine_cpus") or os.cpu_count() or 1)
    for name, data in datas.items():
        _forget_unknown(data, claims)
        _record_skips(data, by_name[name], plan.skipped[name], claims)
        judged = [c for c in claims if skip_reason(c, by_name[name], machine) is None]
        for probe in plan.fresh[name]:
            _judge_again(data, probe, probes_dir, by_name[name], judged)
        path = results_path(probes_dir, name)
        if save and (data["claims"] or data["probes"] or path.exists()):
            save_results(path, data)
    if not plan.jobs:
        say("every result is fresh: nothing to run (--force runs them anyway)")
        return datas, []
    lock = threading.Lock()
    cancel = threading.Event()
    runs: list[NotebookRun] = []
    total = len(plan.jobs)

    def one(job: Job) -> NotebookRun:
        path = probes_dir / f"{job.probe}.ipynb"
        run = run_notebook(path, job.profile, backend, probe=True, stop=cancel.is_set)
        run.figures.update(recorded_figures(run.notebook))
        # Every claim of the probe that can hold here, also those --only left out.
        mine = [
            c
            for c in claims
            if c.probe == job.probe and skip_reason(c, job.profile, machine) is None
        ]
        verdicts = [evaluate(c, run.figures, run.effective_profile, run.failures) for c in mine]
        with lock:
            data = datas[job.profile.name]
            record_run(data, run, verdicts, list(claims), job.profile, env)
            runs.append(run)
            if save:
                out = runs_dir(probes_dir, job.profile.name) / f"{job.probe}.ipynb"
                out.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(run.notebook, out)
                save_results(results_path(probes_dir, job.profile.name), data)
            _report(job, run, verdicts, len(runs), total, say)
        return run

    pending = list(plan.jobs)
    running: dict[Future[NotebookRun], Job] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            while pending or running:
                for job in list(pending):
                    if len(running) >= workers:
                        break
                    if _may_join(job, list(running.values()), machine):
                        pending.remove(job)
                        say(f"      start {job.profile.name} · {job.probe} ({job.why})")
                        running[pool.submit(one, job)] = job
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    future.result()  # a run that raised stops the suite, its sandbox gone
        except (Interrupted, KeyboardInterrupt, Exception):
            cancel.set()
            if running:
                say(f"stopping: tearing down {len(running)} running probe(s)")
            raise
    return datas, runs


def _report(
    job: Job, run: NotebookRun, verdicts: list[ClaimVerdict], n: int, total: int,
    say: Callable[[str], None],
) -> None:  # fmt: skip
    peak = format_bytes(int(run.figures.get("peak_memory_bytes", 0)))
    say(
        f"[{n}/{total}] {job.profile.name} · {job.probe}: {run.wall_seconds:.1f} s, "
        f"peak {peak}, {run.figures['oom_kills']} OOM kill(s)"
    )
    for v in verdicts:
        say(f"      {'ok    ' if v.passed else 'FAILED'} {v.claim}")
        for f in v.failures:
            say(f"             {f}")


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def _forget_unknown(data: dict[str, Any], claims: Sequence[Claim]) -> None:
    """Drop results of claims and probes the registry no longer has."""
    ids, probes = {c.id for c in claims}, {c.probe for c in claims}
    for claim_id in [k for k in data["claims"] if k not in ids]:
        del data["claims"][claim_id]
    for probe in [k for k in data["probes"] if k not in probes]:
        del data["probes"][probe]


def _record_skips(
    data: dict[str, Any], profile: Profile, skipped: dict[str, str], claims: Sequence[Claim]
) -> None:
    by_id = {c.id: c for c in claims}
    digest = profile_hash(profile)
    for claim_id, reason in skipped.items():
        old = data["claims"].get(claim_id, {})
        same = (old.get("status"), old.get("reason"), old.get("profile_hash"))
        if same == ("skipped", reason, digest):
            continue  # unchanged: keep its date, so the file stays byte-identical
        data["claims"][claim_id] = {
            "status": "skipped",
            "reason": reason,
            "statement": by_id[claim_id].statement,
            "probe": by_id[claim_id].probe,
            "profile": profile.name,
            "profile_hash": digest,
            "date": _now(),
        }


def _judge_again(
    data: dict[str, Any], probe: str, probes_dir: Path, profile: Profile, claims: Sequence[Claim]
) -> None:
    """A fresh probe's applicable claims, judged from its recorded figures.

    So an edited expectation, or a claim that now applies, needs no run.
    """
    entry = data["probes"][probe]
    nb = nbformat.read(probes_dir / f"{probe}.ipynb", as_version=4)
    effective = probe_profile(nb, profile)
    for claim in (c for c in claims if c.probe == probe):
        old = data["claims"].get(claim.id)
        v = evaluate(claim, entry["figures"], effective, entry["failures"])
        new = _claim_entry(claim, v, entry, profile)
        if old is None or {k: old.get(k) for k in new} != new:
            data["claims"][claim.id] = new


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _claim_entry(
    claim: Claim, v: ClaimVerdict, probe_entry: dict[str, Any], profile: Profile
) -> dict[str, Any]:
    return {
        "status": "verified" if v.passed else "failed",
        "statement": claim.statement,
        "probe": claim.probe,
        "probe_hash": probe_entry["hash"],
        "profile_hash": profile_hash(profile),
        "figures": _round(v.figures),
        "failures": list(v.failures),
        "date": probe_entry["date"],
        "profile": probe_entry["profile"],
        "backend": probe_entry["backend"],
        "versions": probe_entry["versions"],
    }


def _cell_entry(cell: CellRun) -> dict[str, Any]:
    return {k: v for k, v in cell.metadata().items() if k != "memory_samples"} | {
        "cell": cell.index
    }


def record_run(
    data: dict[str, Any],
    run: NotebookRun,
    verdicts: list[ClaimVerdict],
    claims: list[Claim],
    profile: Profile,
    env: dict[str, str] | None = None,
) -> None:
    """Put one probe run and its claims' verdicts into one profile's ``data``."""
    probe = run.path.stem
    entry = {
        "hash": probe_hash(run.notebook),
        "profile_hash": profile_hash(profile),
        "environment": dict(env or {}),
        "passed": run.passed,
        "failures": run.failures,
        "date": _now(),
        "profile": profile.name,
        "backend": run.backend,
        "versions": run.versions,
        "wall_seconds": round(run.wall_seconds, 2),
        "startup_seconds": round(run.startup_seconds, 2),
        "figures": _round(run.figures),
        "cells": [_cell_entry(c) for c in run.cells],
    }
    data["probes"][probe] = entry
    by_id = {c.id: c for c in claims}
    for v in verdicts:
        data["claims"][v.claim] = _claim_entry(by_id[v.claim], v, entry, profile)
