"""Only stale work re-runs: the main job twice, then one probe changed, then one profile value.

Real runs (``hubprobe probes`` in a subprocess, real sandboxes) of two cheap
probes under two small profiles, in a copy of the probes folder. The second
run with nothing changed runs no probe and leaves every file byte-identical;
a changed probe re-runs under both profiles and nothing else; a changed
profile value re-runs that profile's probes and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hubtools import write_profile

ROOT = Path(__file__).resolve().parents[2]
PROBES = ("indicator-no-limit", "measuring-memory")
CLAIMS = """
[[claim]]
id = "memory-indicator-no-limit"
statement = "Without MEM_LIMIT the indicator shows no limit."
probe = "indicator-no-limit"
expect = ["nolimit_indicator_limit == 0", "cgroup_limit == profile.memory_limit_bytes"]

[[claim]]
id = "memit-measures"
statement = "memit agrees with the cgroup."
probe = "measuring-memory"
expect = ["abs(memit_ratio_200 - 1) <= 0.05"]

[[claim]]
id = "never-here"
statement = "Holds only where the OOM scope is the container."
probe = "measuring-memory"
applies = "profile.oom_scope == 'container'"
otherwise = "These profiles kill the kernel alone."
expect = ["memit_ratio_200 > 0"]
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    probes = tmp_path / "probes"
    probes.mkdir()
    for name in PROBES:
        shutil.copy(ROOT / "probes" / f"{name}.ipynb", probes)
    (probes / "claims.toml").write_text(CLAIMS)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    write_profile(profiles, "one")
    write_profile(profiles, "two", **{'limit = "768M"': 'limit = "1G"'})
    return tmp_path


def _main_job(root: Path) -> tuple[set[tuple[str, str]], str]:
    """Run the probes; which (profile, probe) pairs ran, and the output."""
    env = {**os.environ, "HUBPROBE_PROFILES": str(root / "profiles")}
    done = subprocess.run(
        [sys.executable, "-m", "hubprobe", "probes", "--probes-dir", str(root / "probes")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ran = set(re.findall(r"\] (\S+) · (\S+): [\d.]+ s", done.stderr))
    return ran, done.stderr


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.sandbox
def test_only_stale_results_run_again(suite: Path) -> None:
    everything = {(p, n) for p in ("one", "two") for n in PROBES}
    ran, _ = _main_job(suite)
    assert ran == everything
    data = json.loads((suite / "probes" / "results" / "one.json").read_text())
    assert data["claims"]["never-here"]["status"] == "skipped"
    assert data["claims"]["never-here"]["reason"] == "These profiles kill the kernel alone."

    before = _snapshot(suite / "probes")
    ran, out = _main_job(suite)
    assert ran == set(), out
    assert "nothing to run" in out
    assert _snapshot(suite / "probes") == before, "an unchanged re-run rewrote a file"

    probe = suite / "probes" / "indicator-no-limit.ipynb"
    nb = json.loads(probe.read_text())
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "A note."})
    probe.write_text(json.dumps(nb))
    ran, _ = _main_job(suite)
    assert ran == {("one", "indicator-no-limit"), ("two", "indicator-no-limit")}

    profile = suite / "profiles" / "two.toml"
    profile.write_text(profile.read_text().replace('limit = "1G"', 'limit = "900M"', 1))
    ran, _ = _main_job(suite)
    assert ran == {("two", name) for name in PROBES}
    data = json.loads((suite / "probes" / "results" / "two.json").read_text())
    assert data["claims"]["memory-indicator-no-limit"]["figures"]["cgroup_limit"] == 900 * 2**20
