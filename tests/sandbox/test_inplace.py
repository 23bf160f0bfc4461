"""The inplace backend: readings of a fixture v1 and v2 session, and its child for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubprobe.cgroup import fs
from hubprobe.cgroup.fs import CgroupMount
from hubprobe.cgroup.locate import locate
from hubprobe.sandbox import Limits, SandboxError
from hubprobe.sandbox.cgroup1 import Cgroup1Backend
from hubprobe.sandbox.inplace import InplaceBackend, effective_memory_limit, read_groups

GiB = 2**30
MiB = 2**20
PY = sys.executable
UNLIMITED_V1 = "9223372036854771712"


def write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def v1_tree(root: Path, limit: str = str(2 * GiB), hier: str | None = None) -> Path:
    """A hub container's v1 view: memory and cpu,cpuacct hierarchies, /proc/self."""
    write(
        root / "memory" / "kubepods" / "pod1",
        {
            "memory.usage_in_bytes": "1000\n",
            "memory.max_usage_in_bytes": "3000\n",
            "memory.limit_in_bytes": f"{limit}\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            "memory.stat": f"cache 0\nhierarchical_memory_limit {hier or limit}\n",
        },
    )
    write(
        root / "cpu,cpuacct" / "kubepods" / "pod1",
        {
            "cpu.cfs_quota_us": "100000\n",
            "cpu.cfs_period_us": "100000\n",
            "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 250000000\n",
            "cpuacct.usage": "1500000000\n",
        },
    )
    proc = root / "proc"
    write(
        proc / "self",
        {
            "mounts": f"cgroup {root}/memory cgroup rw,memory 0 0\n"
            f"cgroup {root}/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n",
            "cgroup": "5:memory:/kubepods/pod1\n3:cpu,cpuacct:/kubepods/pod1\n0::/\n",
        },
    )
    return proc


def v2_tree(root: Path) -> Path:
    """A v2 session two levels down, limited at the upper level."""
    write(root / "cg", {"cgroup.controllers": "cpu memory\n"})
    write(root / "cg" / "pod", {"memory.max": f"{GiB}\n"})
    write(
        root / "cg" / "pod" / "ctr",
        {
            "memory.max": "max\n",
            "memory.current": "5000\n",
            "memory.events": "oom 1\noom_kill 1\n",
            "cpu.max": "200000 100000\n",
            "cpu.stat": "usage_usec 4000000\nthrottled_usec 1000000\n",
        },
    )
    proc = root / "proc"
    write(
        proc / "self",
        {"mounts": f"cgroup2 {root}/cg cgroup2 rw 0 0\n", "cgroup": "0::/pod/ctr\n"},
    )
    return proc


def _own_and_mounts(proc: Path) -> tuple[dict[str, str], list[CgroupMount]]:
    return fs.own_cgroups(proc), fs.cgroup_mounts(proc)


def test_v1_session(tmp_path: Path) -> None:
    groups = locate(*_own_and_mounts(v1_tree(tmp_path)))
    assert groups.version == 1
    assert groups.memory == tmp_path / "memory" / "kubepods" / "pod1"
    assert groups.cpu == groups.cpuacct == tmp_path / "cpu,cpuacct" / "kubepods" / "pod1"
    r = read_groups(groups)
    assert (r.memory_bytes, r.peak_memory_bytes, r.memory_limit_bytes) == (1000, 3000, 2 * GiB)
    assert (r.oom_kills, r.cpu_seconds, r.throttled_seconds) == (2, 1.5, 0.25)


def test_v1_limit_of_an_ancestor_counts(tmp_path: Path) -> None:
    groups = locate(*_own_and_mounts(v1_tree(tmp_path, limit=UNLIMITED_V1, hier=str(GiB))))
    assert effective_memory_limit(groups) == GiB
    groups = locate(*_own_and_mounts(v1_tree(tmp_path / "b", limit=UNLIMITED_V1)))
    assert effective_memory_limit(groups) is None


def test_v2_session_limited_above_itself(tmp_path: Path) -> None:
    groups = locate(*_own_and_mounts(v2_tree(tmp_path)))
    assert groups.version == 2
    assert groups.memory == groups.cpu == tmp_path / "cg" / "pod" / "ctr"
    r = read_groups(groups, peak_seen=7000)
    assert (r.memory_bytes, r.peak_memory_bytes, r.memory_limit_bytes) == (5000, 7000, GiB)
    assert (r.oom_kills, r.cpu_seconds, r.throttled_seconds) == (1, 4.0, 1.0)


def test_check_and_create_against_a_fixture_hub(tmp_path: Path) -> None:
    backend = InplaceBackend(proc=v1_tree(tmp_path))
    status = backend.check()
    assert status.usable, status
    assert "2 GiB memory limit" in status.reason
    within = Limits(memory_bytes=2 * GiB + 10 * MiB, cpu=1.0, storage_bytes=GiB)
    with backend.create(within) as sb:
        assert sb.home == os.environ["HOME"]
        assert sb.reading().oom_kills == 2
    with pytest.raises(SandboxError) as err:
        backend.create(Limits(memory_bytes=4 * GiB, cpu=1.0, storage_bytes=GiB))
    message = str(err.value)
    assert "\n" not in message
    assert f"{2 * GiB} bytes (2 GiB)" in message
    assert f"{4 * GiB} bytes (4 GiB)" in message
    assert "pick the profile" in message


def test_no_limit_is_not_usable(tmp_path: Path) -> None:
    backend = InplaceBackend(proc=v1_tree(tmp_path, limit=UNLIMITED_V1))
    status = backend.check()
    assert not status.usable
    assert "no memory limit" in status.reason
    with pytest.raises(SandboxError, match="no memory limit"):
        backend.create(Limits(memory_bytes=GiB, cpu=1.0, storage_bytes=GiB))


def test_this_machine() -> None:
    """On CI our cgroup has no memory limit: inplace says so instead of measuring nothing."""
    backend = InplaceBackend()
    groups = locate(fs.own_cgroups(), fs.cgroup_mounts())
    status = backend.check()
    if effective_memory_limit(groups) is None:
        assert not status.usable
        assert "has no memory limit to measure" in status.reason
        assert "hub" in status.fix
    else:
        assert status.usable, status


# -- the child it starts, for real ----------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _wait_dead(pids: list[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def fixture_hub(tmp_path: Path) -> InplaceBackend:
    return InplaceBackend(proc=v1_tree(tmp_path))


LIMITS = Limits(memory_bytes=2 * GiB, cpu=1.0, storage_bytes=GiB)
PIDS = (
    "import os, subprocess, sys, time\n"
    "a = subprocess.Popen(['sleep', '60'])\n"
    "b = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"  # like a kernel
    "print(os.getpid(), a.pid, b.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_teardown_kills_the_child_tree_and_nothing_else(fixture_hub: InplaceBackend) -> None:
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with fixture_hub.create(LIMITS) as sb:
            child = sb.spawn([PY, "-c", PIDS], stdout=subprocess.PIPE)
            assert child.stdout is not None
            with child.stdout:
                pids = [int(p) for p in child.stdout.readline().split()]
            assert os.getpgid(pids[0]) == pids[0]  # its own group
        assert _wait_dead(pids), [p for p in pids if _alive(p)]
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_teardown_after_the_child_ended_kills_its_group(fixture_hub: InplaceBackend) -> None:
    with fixture_hub.create(LIMITS) as sb:
        child = sb.spawn(["sh", "-c", "sleep 60 >/dev/null & echo $!"], stdout=subprocess.PIPE)
        assert child.stdout is not None
        with child.stdout:
            orphan = int(child.stdout.readline())
        assert sb.wait(timeout=10) == 0
        assert _alive(orphan)
    assert _wait_dead([orphan])


def test_teardown_leaves_a_reused_group_id_alone(
    fixture_hub: InplaceBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hubprobe.sandbox import inplace

    sb = fixture_hub.create(LIMITS)
    sb.spawn(["true"])
    assert sb.wait(timeout=10) == 0
    pid = sb.process.pid if sb.process else 0
    # Pretend a stranger now leads a group with the reaped child's pid.
    monkeypatch.setattr(inplace, "_process_table", lambda _proc: {pid: (1, pid)})
    killed: list[int] = []
    monkeypatch.setattr(inplace.os, "killpg", lambda group, _sig: killed.append(group))
    sb.close()
    assert killed == []


CHECK_INSIDE = """
import json
from hubprobe.sandbox import Limits, SandboxError
from hubprobe.sandbox.inplace import InplaceBackend
b = InplaceBackend()
status = b.check()
out = {"usable": status.usable, "reason": status.reason}
try:
    b.create(Limits(memory_bytes=512 * 2**20, cpu=1.0, storage_bytes=2**30))
except SandboxError as e:
    out["mismatch"] = str(e)
with b.create(Limits(memory_bytes=256 * 2**20, cpu=1.0, storage_bytes=2**30)) as sb:
    sb.spawn(["python3", "-c", "b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    out["exit"] = sb.wait(timeout=60)
    r = sb.reading()
    out["limit"], out["peak"] = r.memory_limit_bytes, r.peak_memory_bytes
print(json.dumps(out))
"""


@pytest.mark.sandbox
@pytest.mark.skipif(not Cgroup1Backend().check().usable, reason="needs the cgroup1 backend")
def test_inside_a_limited_container() -> None:
    """What a hub terminal is: a limited cgroup seen from inside its own namespace."""
    limits = Limits(memory_bytes=256 * MiB, cpu=1.0, storage_bytes=64 * MiB)
    with Cgroup1Backend().create(limits) as sb:
        sb.spawn([PY, "-c", CHECK_INSIDE], stdout=subprocess.PIPE)
        assert sb.process is not None
        out, _ = sb.process.communicate(timeout=120)
    result = json.loads(out)
    assert result["usable"], result
    assert "256 MiB memory limit" in result["reason"]
    assert "pick the profile" in result["mismatch"]
    assert result["exit"] == 0
    assert result["limit"] == 256 * MiB
    assert 64 * MiB <= result["peak"] <= 256 * MiB
