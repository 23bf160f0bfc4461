"""The GitHub Pages workflow publishes the site built from committed results only."""

from __future__ import annotations

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "pages.yml"


def test_builds_with_nox_docs_and_deploys_site() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    build = flow["jobs"]["build"]["steps"]
    runs = [s["run"] for s in build if "run" in s]
    assert any("nox -s docs" in r for r in runs), "the strict build from committed results"
    assert not any("probes" in r or "nox -s guide" in r for r in runs), "never runs a probe"
    env = next(s["env"] for s in build if "run" in s and "nox -s docs" in s["run"])
    assert "steps.pages.outputs.base_url" in env["HUBPROBE_SITE_URL"]
    upload = next(s for s in build if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "site"
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy["steps"])
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
