"""The versioned results file: claim id -> outcome, figures and provenance.

``probes/results.json`` is what the site renders and what staff read: every
figure with the date, backend, profile and software versions it was measured
with, and the hash of the probe it came from, so a changed probe shows as
stale until it is run again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.claims.registry import Claim
from hubprobe.files import write_atomic

__all__ = ["FORMAT", "claim_status", "load_results", "save_results", "source_hash"]

#: 2: a cell is named by "cell" (was "index"), as in every other JSON output.
FORMAT = 2
STATUSES = ("verified", "failed", "stale", "not-run")


def source_hash(nb: nbformat.NotebookNode) -> str:
    """A hash of what the probe does (cell types, sources, tags), not of its outputs."""
    h = hashlib.sha256()
    for cell in nb.cells:
        tags = ",".join(cell.get("metadata", {}).get("tags", []))
        h.update(f"{cell.cell_type}\0{cell.source}\0{tags}\0".encode())
    h.update(repr(sorted(nb.metadata.get("hubprobe", {}).items())).encode())
    return h.hexdigest()[:16]


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
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def claim_status(data: dict[str, Any], claim: Claim, probes_dir: Path) -> str:
    """verified / failed / stale (its probe changed since) / not-run."""
    entry = data.get("claims", {}).get(claim.id)
    if entry is None:
        return "not-run"
    probe = probes_dir / f"{claim.probe}.ipynb"
    if not probe.exists() or source_hash(nbformat.read(probe, as_version=4)) != entry["probe_hash"]:
        return "stale"
    return str(entry["status"])
