"""The suite's plan, without running a probe: what is stale and why, what is skipped, what pairs.

The real runs (nothing changed runs nothing; a changed probe or profile runs
exactly what it affects) are in test_cache.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from hubprobe.claims.freshness import environment, probe_hash, profile_hash
from hubprobe.claims.registry import load_claims
from hubprobe.claims.status import status_rows
from hubprobe.claims.suite import Job, _may_join, plan_suite
from hubprobe.profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = """
[[claim]]
id = "always"
statement = "Holds everywhere."
probe = "limits"
expect = ["memory_limit_bytes == profile.memory_limit_bytes"]

[[claim]]
id = "timed-one-cpu"
statement = "Holds at one CPU and is timed."
probe = "limits"
applies = "profile.cpu_limit <= 1"
otherwise = "The CPU limit is above 1."
timing = true
expect = ["cpu_per_wall <= 1.05 * profile.cpu_limit"]
"""
ENV = environment("oci", 1)


@pytest.fixture
def probes(tmp_path: Path) -> Path:
    folder = tmp_path / "probes"
    folder.mkdir()
    shutil.copy(ROOT / "probes" / "limits.ipynb", folder)
    (folder / "claims.toml").write_text(CLAIMS)
    return folder


def _record(probes: Path, profile_name: str, **changes: object) -> None:
    """A results file as a run would leave it, with ``changes`` to the probe's entry."""
    import nbformat

    profile = load_profile(profile_name)
    nb = nbformat.read(probes / "limits.ipynb", as_version=4)
    entry = {
        "hash": probe_hash(nb), "profile_hash": profile_hash(profile), "environment": ENV,
        "wall_seconds": 7.0, "figures": {}, "failures": [],
    } | changes  # fmt: skip
    data = {"format": 3, "profile": profile_name, "claims": {}, "probes": {"limits": entry}}
    (probes / "results").mkdir(exist_ok=True)
    (probes / "results" / f"{profile_name}.json").write_text(json.dumps(data))


def test_nothing_recorded_runs_everything_that_applies(probes: Path) -> None:
    claims = load_claims(probes / "claims.toml")
    plan = plan_suite(claims, probes, [load_profile("datahub"), load_profile("data8")], ENV)
    assert {(j.profile.name, j.probe, j.why) for j in plan.jobs} == {
        ("datahub", "limits", "no result"),
        ("data8", "limits", "no result"),
    }
    assert plan.skipped == {"datahub": {"timed-one-cpu": "The CPU limit is above 1."}, "data8": {}}
    loads = {j.profile.name: j.load for j in plan.jobs}
    assert loads == {"data8": "cpu", "datahub": "normal"}, "timed only where a timed claim applies"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({}, ""),
        ({"hash": "0" * 16}, "probe changed"),
        ({"profile_hash": "0" * 16}, "profile changed"),
        ({"environment": ENV | {"numpy": "1.0"}}, f"numpy 1.0 -> {ENV['numpy']}"),
        ({"environment": ENV | {"backend": "cgroup1"}}, "backend cgroup1 -> oci"),
    ],
)
def test_what_makes_a_result_stale(probes: Path, changes: dict[str, object], why: str) -> None:
    claims = load_claims(probes / "claims.toml")
    _record(probes, "data8", **changes)
    plan = plan_suite(claims, probes, [load_profile("data8")], ENV)
    assert [j.why for j in plan.jobs] == ([why] if why else [])
    assert plan.fresh["data8"] == ([] if why else ["limits"])
    forced = plan_suite(claims, probes, [load_profile("data8")], ENV, force=True)
    assert [j.why for j in forced.jobs] == ["--force"]


def test_status_rows_say_why(probes: Path) -> None:
    claims = load_claims(probes / "claims.toml")
    _record(probes, "data8", environment=ENV | {"numpy": "1.0"})
    rows = status_rows(claims, probes, [load_profile("data8"), load_profile("datahub")], ENV)
    by = {(r["claim"], r["profile"]): r for r in rows}
    assert set(by) == {(c, p) for c in ("always", "timed-one-cpu") for p in ("data8", "datahub")}
    assert by["always", "data8"]["stale"] is True
    assert "numpy 1.0 ->" in by["always", "data8"]["why"]
    assert by["always", "datahub"] == by["always", "datahub"] | {"status": "not-run", "stale": True}
    assert by["timed-one-cpu", "datahub"]["reason"] == "The CPU limit is above 1."


def _job(load: str, cpu: float = 1.0) -> Job:
    profile = dataclasses.replace(load_profile("data8"), cpu_limit=cpu)
    return Job(profile, "p", "no result", load, 1.0)


def test_pairing_keeps_timed_probes_apart() -> None:
    assert _may_join(_job("cpu"), [], 2)
    assert _may_join(_job("normal"), [_job("normal")], 2)
    assert _may_join(_job("cpu"), [_job("light")], 2), "a timed probe beside one that waits"
    assert _may_join(_job("light"), [_job("cpu")], 2)
    assert not _may_join(_job("cpu"), [_job("normal")], 2)
    assert not _may_join(_job("cpu"), [_job("cpu")], 2)
    assert not _may_join(_job("cpu", cpu=2.0), [_job("light")], 2), "it needs every core"
    assert not _may_join(_job("light"), [_job("light"), _job("light")], 2)


def test_an_edited_expectation_is_judged_again_without_a_run(probes: Path) -> None:
    from hubprobe.claims.results import load_results, results_path
    from hubprobe.claims.suite import run_suite

    profile = load_profile("data8")
    _record(probes, "data8", figures={"memory_limit_bytes": profile.memory_limit_bytes,
                                      "cpu_per_wall": 0.99}, date="2026-12-01T00:00:00+00:00",
            profile="data8", backend="oci", versions={})  # fmt: skip
    claims = load_claims(probes / "claims.toml")
    datas, runs = run_suite(claims, probes, [profile], None, ENV, say=lambda _m: None)  # type: ignore[arg-type]
    assert runs == []
    assert datas["data8"]["claims"]["always"]["status"] == "verified"
    assert datas["data8"]["claims"]["timed-one-cpu"]["status"] == "verified"
    edited = CLAIMS.replace("cpu_per_wall <= 1.05 *", "cpu_per_wall <= 0.5 *")
    (probes / "claims.toml").write_text(edited)
    claims = load_claims(probes / "claims.toml")
    run_suite(claims, probes, [profile], None, ENV, say=lambda _m: None)  # type: ignore[arg-type]
    saved = load_results(results_path(probes, "data8"))["claims"]
    assert saved["timed-one-cpu"]["status"] == "failed"
    assert saved["always"]["status"] == "verified"
    assert saved["timed-one-cpu"]["date"] == "2026-12-01T00:00:00+00:00", "the figures' own date"


def test_only_never_judges_a_claim_that_does_not_apply(probes: Path) -> None:
    """--only one claim: the probe's other claims keep their skip, not a verdict."""
    from hubprobe.claims.results import load_results, results_path
    from hubprobe.claims.suite import run_suite

    profile = load_profile("datahub")  # 4 CPUs: timed-one-cpu does not apply
    _record(probes, "datahub", figures={"memory_limit_bytes": profile.memory_limit_bytes,
                                        "cpu_per_wall": 3.9}, date="2026-12-01T00:00:00+00:00",
            profile="datahub", backend="oci", versions={})  # fmt: skip
    claims = load_claims(probes / "claims.toml")
    run_suite(claims, probes, [profile], None, ENV, say=lambda _m: None)  # type: ignore[arg-type]
    run_suite(claims, probes, [profile], None, ENV, only=["always"], say=lambda _m: None)  # type: ignore[arg-type]
    saved = load_results(results_path(probes, "datahub"))["claims"]
    assert saved["timed-one-cpu"]["status"] == "skipped"
    assert saved["always"]["status"] == "verified"
