"""``hubprobe probes --hub``: the probe suite in a user's server on a live hub.

Every probe runs as in the sandbox (:mod:`hubprobe.hub.runner`), under the
profile measured in that server; a claim is then judged against that
profile. Probes that only make sense in hubprobe's own sandbox are skipped,
each with its reason: one that needs a second server started without
``MEM_LIMIT``, one that needs the image's kernels to load an extension, one
that needs an OOM scope the hub does not have.

Results go to their own file (one per hub), never into the sandbox's
``probes/results/``; they carry the hub's URL, the user, the measured
profile and the date. The executed notebooks are not written back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.claims.freshness import profile_hash
from hubprobe.claims.registry import Claim, evaluate
from hubprobe.claims.registry import skip_reason as claim_skip_reason
from hubprobe.claims.results import load_results, save_results
from hubprobe.claims.suite import probes_for, record_run
from hubprobe.hub.runner import run_on_hub
from hubprobe.hub.session import HubServer
from hubprobe.jupyter.notebook import NotebookRun
from hubprobe.probe import recorded_figures
from hubprobe.profiles import Profile

__all__ = ["results_name", "run_hub_suite", "skip_reason"]


def skip_reason(meta: dict[str, Any], profile: Profile) -> str | None:
    """Why a probe cannot run on this hub, from its ``hubprobe`` metadata; None if it can."""
    if meta.get("unset_env"):
        names = ", ".join(meta["unset_env"])
        return (
            f"needs a second server started without {names}, which only hubprobe's own"
            " sandbox can make; a hub's spawner always sets it"
        )
    if meta.get("ipython_extensions"):
        names = ", ".join(meta["ipython_extensions"])
        return f"needs the hub's image to load {names} in every kernel (an admin's setting)"
    for key, value in (meta.get("profile") or {}).items():
        if getattr(profile, key, value) != value:
            return f"needs {key} = {value!r}; this hub measured {getattr(profile, key)!r}"
    return None


def results_name(url: str) -> str:
    """``https://hub.example/prefix`` -> ``hub.example-prefix``: one results file per hub."""
    rest = url.split("://", 1)[-1].strip("/")
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in rest)


def run_hub_suite(
    claims: Sequence[Claim],
    probes_dir: Path,
    server: HubServer,
    profile: Profile,
    *,
    results_path: Path | None,
    only: Sequence[str] | None = None,
    say: Callable[[str], None] = print,
) -> tuple[dict[str, Any], list[NotebookRun], dict[str, str]]:
    """Run each needed probe once on the hub; returns the data, the runs, and skipped claims."""
    probes = probes_for(claims, only)
    data = load_results(results_path, "measured")
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    data["hub"] = {"url": server.url, "user": server.user, "date": date,
                   "profile": dataclasses.asdict(profile) | {"path": None}}  # fmt: skip
    data.pop("skipped", None)  # format 2 kept skips apart; now they are claims' entries
    runs, skipped = [], {}
    for n, probe in enumerate(probes, start=1):
        path = probes_dir / f"{probe}.ipynb"
        mine = [c for c in claims if c.probe == probe]
        meta = nbformat.read(path, as_version=4).metadata.get("hubprobe", {})
        reason = skip_reason(meta, profile)
        # A claim that cannot hold under this profile says so in its own words, as in the
        # sandbox; only a claim that could hold is skipped for its probe's needs.
        reasons = {c.id: claim_skip_reason(c, profile, profile.node_cpus) or reason for c in mine}
        for c in mine:
            why = reasons[c.id]
            if why:
                skipped[c.id] = why
                data["claims"][c.id] = {
                    "status": "skipped", "reason": why, "statement": c.statement,
                    "probe": probe, "profile": profile.name,
                    "profile_hash": profile_hash(profile), "date": date,
                }  # fmt: skip
        if all(reasons.values()):
            say(f"[{n}/{len(probes)}] {probe}: skipped on a hub: {next(iter(reasons.values()))}")
            continue
        say(f"[{n}/{len(probes)}] {probe}: running in {server.user}'s server on {server.url}")
        run = run_on_hub(path, profile, server=server, probe=True)
        run.figures.update(recorded_figures(run.notebook))
        judged = [c for c in mine if not reasons[c.id]]
        verdicts = [evaluate(c, run.figures, run.effective_profile, run.failures) for c in judged]
        record_run(data, run, verdicts, list(claims), profile)
        runs.append(run)
        if results_path:
            save_results(results_path, data)
        say(f"      {run.wall_seconds:.1f} s, {run.figures['oom_kills']} OOM kill(s)")
        for v in verdicts:
            say(f"      {'ok    ' if v.passed else 'FAILED'} {v.claim}")
            for f in v.failures:
                say(f"             {f}")
    if results_path:
        save_results(results_path, data)
    return data, runs, skipped
