"""Every claim of the registry, verified by a fresh run of its probe, and fresh for every hub.

The probes run once per test session under the default profile (DataHub's):
real server, real sandbox. Each claim is then one test, failing with the
figures it got, or passing as skipped only with its reason. The committed
executed notebooks of that profile must match the fresh run (pytest-notebook's
diff; what legitimately varies is masked by the probe cells' own
``nbreg.diff_replace``). The committed results must hold a fresh result for
every (claim, profile) pair: verified, or skipped with a reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from hubprobe.claims.freshness import current_environment
from hubprobe.claims.registry import load_claims
from hubprobe.claims.regression import notebook_diff
from hubprobe.claims.results import runs_dir
from hubprobe.claims.status import status_rows
from hubprobe.claims.suite import run_suite
from hubprobe.jupyter.notebook import NotebookRun
from hubprobe.profiles import DEFAULT_PROFILE, list_profiles, load_profile
from hubprobe.sandbox import Backend

ROOT = Path(__file__).resolve().parents[2]
PROBES = ROOT / "probes"
CLAIMS = load_claims(PROBES / "claims.toml")
PROFILE = load_profile(DEFAULT_PROFILE)


@pytest.fixture(scope="session")
def fresh(backend: Backend) -> tuple[dict[str, Any], dict[str, NotebookRun]]:
    datas, runs = run_suite(
        CLAIMS, PROBES, [PROFILE], backend, current_environment(backend.name),
        save=False, force=True, say=lambda _m: None,
    )  # fmt: skip
    return datas[PROFILE.name], {r.path.stem: r for r in runs}


@pytest.mark.sandbox
@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_claim(claim: Any, fresh: tuple[dict[str, Any], dict[str, NotebookRun]]) -> None:
    entry = fresh[0]["claims"][claim.id]
    if entry["status"] == "skipped":
        assert entry["reason"] == claim.otherwise, "skipped only for the registry's reason"
        return
    detail = "\n  ".join(entry["failures"])
    assert entry["status"] == "verified", (
        f"{claim.id} ({PROFILE.name}): {claim.statement}\n  {detail}\n  figures: {entry['figures']}"
    )


@pytest.mark.sandbox
@pytest.mark.parametrize("probe", sorted({c.probe for c in CLAIMS}))
def test_committed_notebook_matches_fresh_run(
    probe: str, fresh: tuple[dict[str, Any], dict[str, NotebookRun]]
) -> None:
    committed_path = runs_dir(PROBES, PROFILE.name) / f"{probe}.ipynb"
    if probe not in fresh[1]:
        assert not committed_path.exists(), f"{committed_path}: a run of a probe that is skipped"
        pytest.skip(f"no claim of {probe} applies under {PROFILE.name}")
    committed = nbformat.read(committed_path, as_version=4)
    source = nbformat.read(PROBES / f"{probe}.ipynb", as_version=4)
    diff = notebook_diff(committed, fresh[1][probe].notebook, masks=source)
    assert not diff, (
        f"{committed_path} (-) differs from a fresh run (+); a measured value that "
        f"varies needs a narrow mask in its cell's nbreg.diff_replace (in probes/{probe}.ipynb)"
        f":{diff}"
    )


ROWS = status_rows(
    CLAIMS, PROBES, [load_profile(n) for n in list_profiles()], current_environment("oci")
)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['claim']}@{r['profile']}" for r in ROWS])
def test_committed_result_is_fresh(row: dict[str, Any]) -> None:
    where = f"{row['claim']} under {row['profile']}"
    fix = f"run `hubprobe probes --profile {row['profile']}` and commit probes/"
    assert not row["stale"], f"{where}: stale ({row['why']}); {fix}"
    assert row["status"] in ("verified", "skipped"), f"{where}: {row['status']}; {fix}"
    if row["status"] == "skipped":
        assert row["reason"], f"{where}: skipped without a reason"
