"""``hubprobe probes --hub`` for real: each claim's outcome equals its sandbox outcome.

A subset (the storage and out-of-memory probes, and one that only the
sandbox can run) to keep the test session short; ``nox -s bench`` runs
every probe that can run on a hub, in both modes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from hubtools import probes

from hubprobe.hub.local import LocalHub
from hubprobe.profiles import Profile

PROBES = Path(__file__).parents[2] / "probes"
ONLY = ["storage-limit", "oom-kernel-restarts", "memory-indicator-no-limit"]


def _committed() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((PROBES / "results").glob("*.json"))
    }


def test_claims_on_the_hub_match_the_sandbox(
    local_hub: LocalHub, hub_profile: Profile, tmp_path: Path
) -> None:
    committed = _committed()
    copy = tmp_path / "probes"
    shutil.copytree(PROBES, copy)
    shutil.rmtree(copy / "results")
    local = probes("--profile", str(hub_profile.path), "--probes-dir", str(copy),
                   "--only", *ONLY)  # fmt: skip
    # --profile: what a server cannot measure (is the home a volume of its own?) comes from it.
    on_hub = probes("--hub", local_hub.url, "--user", "student", "--token-file",
                    str(local_hub.token_file), "--profile", str(hub_profile.path),
                    "--probes-dir", str(copy), "--only", *ONLY)  # fmt: skip
    assert on_hub.returncode == local.returncode, on_hub.stderr
    here = json.loads((copy / "results" / f"{hub_profile.name}.json").read_text())["claims"]
    (hub_file,) = (copy / "hub-results").glob("*.json")
    assert hub_file.name == local_hub.url.split("://")[1].replace(":", "-") + ".json"
    hub = json.loads(hub_file.read_text())
    ran = {c: v["status"] for c, v in hub["claims"].items() if v["status"] != "skipped"}
    assert ran == {c: here[c]["status"] for c in ran}
    assert set(ran) >= {"storage-limit", "oom-kernel-restarts", "oom-no-memory-message"}
    assert "verified" in ran.values()
    # The one only the sandbox can run is skipped on the hub, with its reason.
    assert "memory-indicator-no-limit" not in ran
    assert hub["claims"]["memory-indicator-no-limit"]["status"] == "skipped"
    assert "without MEM_LIMIT" in hub["claims"]["memory-indicator-no-limit"]["reason"]
    assert here["memory-indicator-no-limit"]["status"] == "verified"
    # Provenance: where, who, what was measured; and the token is not in it.
    assert hub["hub"]["url"] == local_hub.url
    assert hub["hub"]["user"] == "student"
    assert hub["hub"]["profile"]["memory_limit_bytes"] == hub_profile.memory_limit_bytes
    assert local_hub.token not in hub_file.read_text()
    assert all(local_hub.token not in nb.read_text() for nb in copy.glob("*.ipynb"))
    # The sandbox's committed results are untouched.
    assert _committed() == committed


def test_skip_reasons(hub_profile: Profile) -> None:
    from hubprobe.hub.probes import results_name, skip_reason

    assert skip_reason({}, hub_profile) is None
    assert "without MEM_LIMIT" in str(skip_reason({"unset_env": ["MEM_LIMIT"]}, hub_profile))
    assert "hubprobe.notice" in str(
        skip_reason({"ipython_extensions": ["hubprobe.notice"]}, hub_profile)
    )
    whole = {"profile": {"oom_scope": "container"}}
    assert "measured 'process'" in str(skip_reason(whole, hub_profile))
    assert skip_reason({"profile": {"oom_scope": "process"}}, hub_profile) is None
    assert results_name("https://hub.example/prefix/") == "hub.example-prefix"
