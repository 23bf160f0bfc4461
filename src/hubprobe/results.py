"""The versioned results file: claim id -> outcome, figures and provenance.

``probes/results.json`` is what the site renders and what staff read: every
figure with the date, backend, profile and software versions it was measured
with, and the hash of the probe it came from, so a changed probe shows as
stale until it is run again.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.claims import Claim, Verdict
from hubprobe.runner import NotebookRun, source_hash

__all__ = ["FORMAT", "claim_status", "load_results", "record_run", "save_results"]

FORMAT = 1
STATUSES = ("verified", "failed", "stale", "not-run")


def load_results(path: Path | None) -> dict[str, Any]:
    """The results file's data; an empty one if there is no file (or no path)."""
    if path is None or not path.exists():
        return {"format": FORMAT, "claims": {}, "probes": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(
            f"{path}: results format {data.get('format')!r}, expected {FORMAT}; run the probes again"
        )
    return data


def save_results(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def record_run(
    data: dict[str, Any], run: NotebookRun, verdicts: list[Verdict], claims: list[Claim]
) -> None:
    """Put one probe run and its claims' verdicts into ``data``."""
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    probe = run.path.stem
    digest = source_hash(run.notebook)
    data["probes"][probe] = {
        "hash": digest,
        "passed": run.passed,
        "failures": run.failures,
        "date": date,
        "profile": run.profile,
        "backend": run.backend,
        "versions": run.versions,
        "wall_seconds": round(run.wall_seconds, 2),
        "startup_seconds": round(run.startup_seconds, 2),
        "figures": _round(run.figures),
        "cells": [
            {k: v for k, v in c.metadata().items() if k != "memory_samples"} | {"index": c.index}
            for c in run.cells
        ],
    }
    by_id = {c.id: c for c in claims}
    for v in verdicts:
        data["claims"][v.claim] = {
            "status": "verified" if v.passed else "failed",
            "statement": by_id[v.claim].statement,
            "probe": probe,
            "probe_hash": digest,
            "figures": _round(v.figures),
            "failures": list(v.failures),
            "date": date,
            "profile": run.profile,
            "backend": run.backend,
            "versions": run.versions,
        }


def claim_status(data: dict[str, Any], claim: Claim, probes_dir: Path) -> str:
    """verified / failed / stale (its probe changed since) / not-run."""
    entry = data.get("claims", {}).get(claim.id)
    if entry is None:
        return "not-run"
    probe = probes_dir / f"{claim.probe}.ipynb"
    if not probe.exists() or source_hash(nbformat.read(probe, as_version=4)) != entry["probe_hash"]:
        return "stale"
    return str(entry["status"])
