"""The results, one file per hub profile: claim id -> outcome, figures and provenance.

``probes/results/<profile>.json`` is what the site renders and what staff
read: every figure with the date, backend, profile and software versions it
was measured with. Each probe's entry keeps the hashes of what determined it
(:mod:`hubprobe.claims.freshness`), so a changed probe or profile shows as
stale until it runs again, and an unchanged one is never run twice. The
executed notebooks go beside, in ``probes/runs/<profile>/``.

A claim that cannot hold under a profile is recorded as ``skipped`` with its
reason, never left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.claims.freshness import probe_hash, profile_hash
from hubprobe.claims.registry import Claim
from hubprobe.files import write_atomic
from hubprobe.profiles import Profile

__all__ = [
    "FORMAT",
    "STATUSES",
    "claim_status",
    "load_all",
    "load_results",
    "results_path",
    "runs_dir",
    "save_results",
]

#: 3: one file per profile; skipped claims with their reason; freshness hashes.
FORMAT = 3
STATUSES = ("verified", "failed", "skipped", "stale", "not-run")


def results_path(probes_dir: Path, profile: str) -> Path:
    return probes_dir / "results" / f"{profile}.json"


def runs_dir(probes_dir: Path, profile: str) -> Path:
    """Where the executed probe notebooks of one profile are kept."""
    return probes_dir / "runs" / profile


def load_results(path: Path | None, profile: str = "") -> dict[str, Any]:
    """One profile's results; an empty set if there is no file (or no path)."""
    if path is None or not path.exists():
        return {"format": FORMAT, "profile": profile, "claims": {}, "probes": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(
            f"{path}: results format {data.get('format')!r}, expected {FORMAT}; run the probes again"
        )
    return data


def load_all(probes_dir: Path) -> dict[str, dict[str, Any]]:
    """Every profile's results, by profile name."""
    return {
        path.stem: load_results(path, path.stem)
        for path in sorted((probes_dir / "results").glob("*.json"))
    }


def save_results(path: Path, data: dict[str, Any]) -> bool:
    """Write ``data``; an unchanged file is left alone (byte for byte). True if written."""
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
    return True


def claim_status(data: dict[str, Any], claim: Claim, probes_dir: Path, profile: Profile) -> str:
    """verified / failed / skipped / stale (its probe or profile changed since) / not-run.

    Staleness here is about content (the probe's source, the profile's values);
    ``hubprobe probes --status`` also compares the environment it ran in.
    """
    entry = data.get("claims", {}).get(claim.id)
    if entry is None:
        return "not-run"
    if entry.get("profile_hash") != profile_hash(profile):
        return "stale"
    if entry["status"] == "skipped":
        return "skipped"
    probe = probes_dir / f"{claim.probe}.ipynb"
    if not probe.exists() or probe_hash(nbformat.read(probe, as_version=4)) != entry["probe_hash"]:
        return "stale"
    return str(entry["status"])
