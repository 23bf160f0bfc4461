"""The CLI as a user runs it: a real subprocess, real sandboxes where needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hubprobe.profiles import load_profile

PY = sys.executable


def hubprobe(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "hubprobe", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def small_profile(tmp_path: Path, memory: str = "256M", storage: str = "64M") -> Path:
    """A copy of curriculum-guide with a smaller memory and storage, for quick kills."""
    text = load_profile("curriculum-guide").path.read_text()
    text = text.replace('limit = "2G"', f'limit = "{memory}"').replace(
        'guarantee = "1G"', f'guarantee = "{memory}"'
    )
    text = text.replace('size = "10G"', f'size = "{storage}"').replace(
        'name = "curriculum-guide"', 'name = "small"'
    )
    path = tmp_path / "small.toml"
    path.write_text(text)
    return path


def test_help_documents_exit_statuses() -> None:
    out = hubprobe("sandbox", "--help").stdout
    for code in ("137", "124", "125", "130", "143", "2 "):
        assert code in out
    assert "datahub" in out


@pytest.mark.parametrize("command", ["doctor", "limits", "sandbox", "probes", "check"])
def test_every_command_documents_usage_errors_as_2(command: str) -> None:
    from hubprobe.errors import ExitCode, exit_help

    usage_line = exit_help([ExitCode.USAGE]).splitlines()[1]
    assert usage_line in hubprobe(command, "--help").stdout


def test_doctor_lists_every_backend() -> None:
    from hubprobe.sandbox import BACKENDS

    result = hubprobe("doctor")
    for cls in BACKENDS:
        assert cls.name in result.stdout
    assert result.returncode in (0, 1)


def test_limits_json_has_the_readings(tmp_path: Path) -> None:
    data = json.loads(hubprobe("limits", "--json").stdout)
    for key in ("memory_limit_bytes", "cpu_limit", "oom_kills", "env_mem_limit", "os_cpu_count"):
        assert key in data
    assert (data["format"], data["command"]) == (2, "limits")
    # --json FILE writes the same document to a file, and prints nothing on stdout.
    result = hubprobe("limits", "--json", str(tmp_path / "l.json"))
    assert json.loads((tmp_path / "l.json").read_text())["command"] == "limits"
    assert "memory limit" in result.stdout


def test_doctor_json_names_the_chosen_backend() -> None:
    result = hubprobe("doctor", "--json", "-")
    data = json.loads(result.stdout)
    assert (data["format"], data["command"]) == (2, "doctor")
    assert {b["backend"] for b in data["backends"]} >= {"cgroup1", "cgroup2", "inplace"}
    assert result.returncode == (0 if data["chosen"] else 1)


@pytest.mark.sandbox
def test_sandbox_report_and_exit_code(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = hubprobe("sandbox", "--report", str(report), "--", "sh", "-c", "exit 3")
    assert result.returncode == 3, result.stderr
    data = json.loads(report.read_text())
    for key in (
        "exit_code", "oom_kills", "peak_memory_bytes", "memory_limit_bytes", "cpu_seconds",
        "throttled_seconds", "wall_seconds", "backend", "profile",
    ):  # fmt: skip
        assert key in data
    assert data["exit_code"] == 3
    assert (data["format"], data["command"]) == (2, "sandbox")
    assert data["profile"]["name"] == "datahub"
    assert data["memory_limit_bytes"] == 2**30


@pytest.mark.sandbox
def test_sandbox_oom_exits_137(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    code = "b = bytearray(512 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    profile = small_profile(tmp_path)
    result = hubprobe(
        "sandbox", "--profile", str(profile), "--report", str(report), "--", PY, "-c", code
    )
    assert result.returncode == 137
    data = json.loads(report.read_text())
    assert data["oom_kills"] >= 1
    assert data["profile"]["name"] == "small"
    assert "out of memory" in result.stderr


@pytest.mark.sandbox
def test_sandbox_timeout_exits_124() -> None:
    result = hubprobe("sandbox", "--timeout", "0.5", "--", "sleep", "30")
    assert result.returncode == 124
    assert "timeout" in result.stderr


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "no-such-hub"], "no-such-hub"),
        (["--backend", "no-such-backend"], "unknown backend"),
    ],
)
def test_bad_input_is_one_line_and_starts_nothing(args: list[str], message: str) -> None:
    result = hubprobe("sandbox", *args, "--", "true")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


@pytest.mark.sandbox
def test_bad_profile_file_names_file_and_key(tmp_path: Path) -> None:
    path = small_profile(tmp_path)
    path.write_text(path.read_text().replace('limit = "256M"', 'limit = "256MB"', 1))
    result = hubprobe("sandbox", "--profile", str(path), "--", "true")
    assert result.returncode == 2
    assert "small.toml" in result.stderr
    assert "memory.limit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_command_is_a_usage_error() -> None:
    result = hubprobe("sandbox")
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_a_cpu_limit_the_kernel_cannot_take_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    path = small_profile(tmp_path)
    text = path.read_text().replace("limit = 1.0", "limit = 0.001", 1)
    path.write_text(text.replace("guarantee = 0.05", "guarantee = 0.001", 1))
    result = hubprobe("sandbox", "--profile", str(path), "--", "true")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "below the kernel's smallest quota" in result.stderr


@pytest.mark.sandbox
def test_a_memory_limit_above_the_machines_ram_is_said_not_to_bind(tmp_path: Path) -> None:
    ram_kib = int(Path("/proc/meminfo").read_text().split()[1])
    too_big = f"{ram_kib // 2**20 + 8}G"
    path = small_profile(tmp_path, memory=too_big)
    path.write_text(path.read_text().replace('memory = "64G"', f'memory = "{too_big}"'))
    result = hubprobe("sandbox", "--profile", str(path), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "cannot bind here" in result.stderr


def test_probes_status_lists_every_claim_and_profile_and_runs_nothing() -> None:
    from hubprobe.claims.registry import load_claims
    from hubprobe.profiles import list_profiles

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [PY, "-m", "hubprobe", "probes", "--status", "--json", "-"],
        capture_output=True, text=True, cwd=root, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    claims = load_claims(root / "probes" / "claims.toml")
    assert {(r["claim"], r["profile"]) for r in rows} == {
        (c.id, p) for c in claims for p in list_profiles()
    }
    for row in rows:
        assert {"claim", "profile", "status", "stale", "why", "date", "reason"} <= set(row)
        assert row["status"] in ("verified", "failed", "skipped", "not-run")
        assert isinstance(row["stale"], bool)
    assert "start" not in result.stderr, "--status runs no probe"


def test_probes_json_without_status_is_a_usage_error() -> None:
    result = hubprobe("probes", "--json", "-")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "hubprobe: --json goes with --status; add --status, or leave --json out"
    )


def test_probes_outside_a_checkout_says_where_the_probes_are(tmp_path: Path) -> None:
    result = subprocess.run(
        [PY, "-m", "hubprobe", "probes", "--status"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "no claim registry here" in line
    assert "--probes-dir" in line
