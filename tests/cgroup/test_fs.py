"""cgroup file readers against fixture trees of v1 and v2 files."""

from __future__ import annotations

from pathlib import Path

from hubprobe.cgroup import fs

MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""


def write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_parse_mounts_keeps_controller_options() -> None:
    mounts = fs.parse_mounts(MOUNTS)
    by_point = {str(m.mountpoint): m for m in mounts}
    assert by_point["/sys/fs/cgroup/cpu,cpuacct"].options == "cpu,cpuacct"
    assert by_point["/sys/fs/cgroup/cpu,cpuacct"].controllers == {"cpu", "cpuacct"}
    assert by_point["/sys/fs/cgroup/memory"].options == "memory"
    assert by_point["/sys/fs/cgroup/systemd"].options == "name=systemd"
    assert by_point["/sys/fs/cgroup/unified"].version == 2
    assert "/sys/fs/cgroup" not in by_point


def test_parse_proc_cgroup() -> None:
    text = "4:memory:/process_api/abc\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/user.slice\n"
    own = fs.parse_proc_cgroup(text)
    assert own == {
        "memory": "/process_api/abc",
        "cpu": "/",
        "cpuacct": "/",
        "systemd": "/x",
        "": "/user.slice",
    }


def test_memory_v1_no_limit_reads_as_none(tmp_path: Path) -> None:
    g = write(
        tmp_path,
        {
            "memory.usage_in_bytes": "1000\n",
            "memory.max_usage_in_bytes": "2000\n",
            "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        },
    )
    r = fs.read_memory_v1(g)
    assert (r.usage_bytes, r.peak_bytes, r.limit_bytes, r.oom_kills) == (1000, 2000, None, 3)


def test_memory_v2(tmp_path: Path) -> None:
    g = write(
        tmp_path,
        {
            "memory.current": "500\n",
            "memory.peak": "900\n",
            "memory.max": "2147483648\n",
            "memory.events": "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 1\n",
        },
    )
    r = fs.read_memory_v2(g)
    assert (r.usage_bytes, r.peak_bytes, r.limit_bytes, r.oom_kills) == (500, 900, 2**31, 2)
    (g / "memory.max").write_text("max\n")
    (g / "memory.peak").unlink()
    r = fs.read_memory_v2(g)
    assert r.limit_bytes is None
    assert r.peak_bytes is None


def test_cpu_v1_quota_and_throttling(tmp_path: Path) -> None:
    cpu = write(
        tmp_path / "cpu",
        {
            "cpu.cfs_quota_us": "50000\n",
            "cpu.cfs_period_us": "100000\n",
            "cpu.stat": "nr_periods 10\nnr_throttled 5\nthrottled_time 2500000000\n",
        },
    )
    acct = write(tmp_path / "acct", {"cpuacct.usage": "1500000000\n"})
    r = fs.read_cpu_v1(cpu, acct)
    assert (r.quota_cpus, r.usage_seconds, r.throttled_seconds) == (0.5, 1.5, 2.5)
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert fs.read_cpu_v1(cpu, acct).quota_cpus is None


def test_cpu_v2(tmp_path: Path) -> None:
    g = write(
        tmp_path,
        {"cpu.max": "200000 100000\n", "cpu.stat": "usage_usec 3000000\nthrottled_usec 500000\n"},
    )
    r = fs.read_cpu_v2(g)
    assert (r.quota_cpus, r.usage_seconds, r.throttled_seconds) == (2.0, 3.0, 0.5)
    (g / "cpu.max").write_text("max 100000\n")
    assert fs.read_cpu_v2(g).quota_cpus is None


def test_pids_in_a_removed_cgroup_is_empty(tmp_path: Path) -> None:
    assert fs.pids_in(tmp_path / "gone") == []
    write(tmp_path / "g", {"cgroup.procs": "12\n34\n"})
    assert fs.pids_in(tmp_path / "g") == [12, 34]


def test_working_set_is_usage_less_inactive_file_cache(tmp_path: Path) -> None:
    v1 = write(
        tmp_path / "v1",
        {
            "memory.usage_in_bytes": "1000\n",
            "memory.max_usage_in_bytes": "2000\n",
            "memory.limit_in_bytes": "4096\n",
            "memory.oom_control": "oom_kill 0\n",
            # inactive_file is this cgroup's own; total_ counts its children too, as usage does.
            "memory.stat": "cache 500\ninactive_file 10\ntotal_inactive_file 300\n",
        },
    )
    r = fs.read_memory_v1(v1)
    assert (r.inactive_file_bytes, r.working_set_bytes) == (300, 700)
    v2 = write(
        tmp_path / "v2",
        {
            "memory.current": "500\n",
            "memory.max": "max\n",
            "memory.events": "oom_kill 0\n",
            "memory.stat": "anon 100\nfile 400\nactive_file 50\ninactive_file 350\n",
        },
    )
    assert fs.read_memory_v2(v2).working_set_bytes == 150
    (v2 / "memory.stat").unlink()  # not there: the working set is the usage, said as unknown
    r = fs.read_memory_v2(v2)
    assert (r.inactive_file_bytes, r.working_set_bytes) == (None, 500)
