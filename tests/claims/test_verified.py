"""Every claim of the registry, verified by a fresh run of its probe.

The probes run once per test session (real server, real sandbox, the default
profile); each claim is then one test, failing with the figures it got.
The committed executed notebooks must match the fresh run (pytest-notebook's
diff; what legitimately varies is masked by the probe cells' own
``nbreg.diff_replace``), and the committed results must cover every claim,
none stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from hubprobe.claims.registry import load_claims
from hubprobe.claims.regression import notebook_diff
from hubprobe.claims.results import claim_status, load_results
from hubprobe.claims.suite import run_suite
from hubprobe.jupyter.notebook import NotebookRun
from hubprobe.profiles import DEFAULT_PROFILE, load_profile
from hubprobe.sandbox import Backend

ROOT = Path(__file__).resolve().parents[2]
PROBES = ROOT / "probes"
CLAIMS = load_claims(PROBES / "claims.toml")


@pytest.fixture(scope="session")
def fresh(backend: Backend) -> tuple[dict[str, Any], dict[str, NotebookRun]]:
    data, runs = run_suite(
        CLAIMS, PROBES, load_profile(DEFAULT_PROFILE), backend,
        results_path=None, save_notebooks=False, say=lambda _m: None,
    )  # fmt: skip
    return data, {r.path.stem: r for r in runs}


@pytest.mark.sandbox
@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_claim(claim: Any, fresh: tuple[dict[str, Any], dict[str, NotebookRun]]) -> None:
    entry = fresh[0]["claims"][claim.id]
    detail = "\n  ".join(entry["failures"])
    assert entry["status"] == "verified", (
        f"{claim.id}: {claim.statement}\n  {detail}\n  figures: {entry['figures']}"
    )


@pytest.mark.sandbox
@pytest.mark.parametrize("probe", sorted({c.probe for c in CLAIMS}))
def test_committed_notebook_matches_fresh_run(
    probe: str, fresh: tuple[dict[str, Any], dict[str, NotebookRun]]
) -> None:
    committed = nbformat.read(PROBES / f"{probe}.ipynb", as_version=4)
    diff = notebook_diff(committed, fresh[1][probe].notebook)
    assert not diff, (
        f"probes/{probe}.ipynb (-) differs from a fresh run (+); a measured value that "
        f"varies needs a narrow mask in its cell's nbreg.diff_replace:{diff}"
    )


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_committed_result_is_verified_and_current(claim: Any) -> None:
    data = load_results(PROBES / "results.json")
    assert claim_status(data, claim, PROBES) == "verified", (
        f"{claim.id}: run `hubprobe probes` and commit probes/ (results and notebooks)"
    )
