"""``read_session`` against a fixture /proc and cgroup tree, and for real."""

from __future__ import annotations

from pathlib import Path

from hubprobe.cgroup.session import read_session


def test_v1_fixture_session(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    mem = root / "memory" / "sess"
    cpu = root / "cpu" / "sess"
    acct = root / "cpuacct" / "sess"
    for d in (mem, cpu, acct):
        d.mkdir(parents=True)
    (mem / "memory.usage_in_bytes").write_text("100\n")
    (mem / "memory.max_usage_in_bytes").write_text("200\n")
    (mem / "memory.limit_in_bytes").write_text("2147483648\n")
    (mem / "memory.oom_control").write_text("oom_kill 1\n")
    (cpu / "cpu.cfs_quota_us").write_text("100000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / "cpu.stat").write_text("throttled_time 0\n")
    (acct / "cpuacct.usage").write_text("2000000000\n")
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text("3:memory:/sess\n2:cpuacct:/sess\n1:cpu:/sess\n")
    (proc / "mounts").write_text(
        f"cgroup {root}/memory cgroup rw,memory 0 0\n"
        f"cgroup {root}/cpu cgroup rw,cpu 0 0\n"
        f"cgroup {root}/cpuacct cgroup rw,cpuacct 0 0\n"
    )
    env = {"MEM_LIMIT": "2147483648", "CPU_LIMIT": "1.0", "HOME": str(tmp_path)}
    s = read_session(tmp_path / "proc", env)
    assert s.cgroup_version == 1
    assert s.memory_limit_bytes == 2**31
    assert (s.memory_usage_bytes, s.memory_peak_bytes, s.oom_kills) == (100, 200, 1)
    assert (s.cpu_limit, s.cpu_seconds, s.throttled_seconds) == (1.0, 2.0, 0.0)
    assert (s.env_mem_limit, s.env_cpu_limit) == ("2147483648", "1.0")
    assert s.home_size_bytes is not None


def test_no_cgroup_at_all(tmp_path: Path) -> None:
    proc = tmp_path / "self"
    proc.mkdir()
    (proc / "cgroup").write_text("")
    (proc / "mounts").write_text("")
    s = read_session(tmp_path, {"HOME": "/nonexistent-home"})
    assert s.cgroup_version is None
    assert s.memory_limit_bytes is None
    assert s.home_size_bytes is None


def test_this_process_has_a_cgroup() -> None:
    s = read_session()
    assert s.cgroup_version in (1, 2)
    assert s.memory_usage_bytes is not None
