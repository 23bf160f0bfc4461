"""``hubprobe profile --hub`` for real against the local hub, and the compare rules."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import hubtools
from hubtools import settle, write_profile

from hubprobe.errors import ExitCode
from hubprobe.hub.api import HubClient
from hubprobe.hub.local import LocalHub
from hubprobe.hub.measured import compare
from hubprobe.profiles import Profile, load_profile


def profile_cmd(hub: LocalHub, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTERHUB_API_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "hubprobe", "profile", "--hub", hub.url, "--user", "student",
         "--token-file", str(hub.token_file), *args],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def test_the_measured_profile_is_the_one_the_spawner_was_given(
    local_hub: LocalHub, hub_profile: Profile, tmp_path: Path
) -> None:
    before = hubtools.count()
    out = tmp_path / "measured.toml"
    done = profile_cmd(local_hub, "--output", str(out), "--compare", str(hub_profile.path))
    assert done.returncode == ExitCode.OK, done.stderr
    assert "every measured value matches" in done.stderr
    measured = load_profile(str(out))
    assert measured.memory_limit_bytes == hub_profile.memory_limit_bytes
    assert measured.memory_guarantee_bytes == hub_profile.memory_guarantee_bytes
    assert measured.cpu_limit == hub_profile.cpu_limit
    assert measured.cpu_guarantee == hub_profile.cpu_guarantee
    assert measured.pids_limit == hub_profile.pids_limit
    assert measured.oom_scope == hub_profile.oom_scope
    assert measured.interface == hub_profile.interface
    assert (measured.node_cpus, measured.node_memory_bytes) == (
        hub_profile.node_cpus,
        hub_profile.node_memory_bytes,
    )
    # The home's filesystem: the image's size less ext4's own tables and journal.
    assert 0.9 * hub_profile.storage_bytes <= measured.storage_bytes <= hub_profile.storage_bytes
    date = measured.sources["memory.limit"]
    assert date.startswith(f"measured on {local_hub.url} (user student) on 20"), date
    assert measured.sources["culling.kernel_idle_seconds"].startswith("not measured")
    # The server was not running: it was started for this, and stopped again.
    assert not HubClient(local_hub.url, local_hub.token).server_ready("student")
    assert settle(before) == {}


def test_compare_names_the_one_value_that_differs(local_hub: LocalHub, tmp_path: Path) -> None:
    changed = write_profile(tmp_path, "drifted", **{"limit = 512": "limit = 4096"})
    done = profile_cmd(local_hub, "--output", str(tmp_path / "m.toml"), "--compare", str(changed))
    assert done.returncode == ExitCode.DIFFERS, done.stderr
    assert done.stdout.strip().splitlines() == ["pids.limit: measured 512, drifted says 4096"]
    assert "1 value(s) differ" in done.stderr


def test_compare_skips_what_was_not_measured(hub_profile: Profile) -> None:
    sources = {**hub_profile.sources, "pids.limit": "not measured: no pids limit; taken from x"}
    measured = dataclasses.replace(hub_profile, pids_limit=7, sources=sources)
    assert compare(measured, hub_profile) == []


def test_compare_allows_the_filesystems_overhead_only(hub_profile: Profile) -> None:
    size = hub_profile.storage_bytes
    near = dataclasses.replace(hub_profile, storage_bytes=int(size * 0.95))
    assert compare(near, hub_profile) == []
    far = dataclasses.replace(hub_profile, storage_bytes=int(size * 0.8))
    assert [line.split(":")[0] for line in compare(far, hub_profile)] == ["storage.size"]
    above = dataclasses.replace(hub_profile, storage_bytes=size + 1)
    assert [line.split(":")[0] for line in compare(above, hub_profile)] == ["storage.size"]
