"""``hubprobe probes --status``: every (claim, profile) with its status, date and staleness.

Reads the results files and the probes; runs nothing. A result is stale when
its probe, its profile or the environment (backend, cgroup version, Python
and the outcome-shaping packages) differs from now; ``why`` says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.claims.freshness import environment_changes, probe_hash, profile_hash
from hubprobe.claims.registry import Claim
from hubprobe.claims.results import load_results, results_path
from hubprobe.claims.suite import plan_suite
from hubprobe.profiles import Profile

__all__ = ["status_rows"]


def status_rows(
    claims: Sequence[Claim],
    probes_dir: Path,
    profiles: Sequence[Profile],
    env: dict[str, str],
    *,
    only: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row a (claim, profile): claim, profile, status, stale, why, date, reason."""
    plan = plan_suite(claims, probes_dir, profiles, env, only=only)
    to_run = {(j.profile.name, j.probe): j.why for j in plan.jobs}
    hashes = {
        probe: probe_hash(nbformat.read(probes_dir / f"{probe}.ipynb", as_version=4))
        for probe in {c.probe for c in claims}
    }
    rows = []
    for profile in profiles:
        data = load_results(results_path(probes_dir, profile.name), profile.name)
        skipped = plan.skipped[profile.name]
        for claim in claims:
            if only and claim.id not in only:
                continue
            entry = data["claims"].get(claim.id)
            status = entry["status"] if entry else "not-run"
            why = to_run.get((profile.name, claim.probe), "")
            if claim.id in skipped:
                recorded = entry is not None and entry.get("reason") == skipped[claim.id]
                fresh = recorded and entry.get("profile_hash") == profile_hash(profile)
                why = "" if fresh else "not recorded as skipped yet"
            elif entry is not None and entry["status"] == "skipped":
                why = "recorded as skipped, but applies now"
            elif entry is not None and not why:
                # Fresh probe; the claim's own entry must match it too.
                probe = data["probes"].get(claim.probe, {})
                if entry.get("probe_hash") != hashes[claim.probe]:
                    why = "probe changed"
                elif probe.get("environment") and environment_changes(probe["environment"], env):
                    why = ", ".join(environment_changes(probe["environment"], env))
            rows.append(
                {
                    "claim": claim.id,
                    "profile": profile.name,
                    "status": status,
                    "stale": bool(why) or entry is None,
                    "why": why or ("no result" if entry is None else ""),
                    "date": entry.get("date") if entry else None,
                    "reason": entry.get("reason") if entry else skipped.get(claim.id),
                }
            )
    return rows
