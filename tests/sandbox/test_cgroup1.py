"""The cgroup1 backend for real: OOM kills, CPU quota, ENOSPC, teardown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubprobe.profiles import load_profile
from hubprobe.sandbox import Backend, Limits, SandboxError
from hubprobe.sandbox.cgroup1 import Cgroup1Backend
from hubprobe.sandbox.run import TIMEOUT_EXIT, run_command

pytestmark = pytest.mark.sandbox

GiB = 2**30
MiB = 2**20
PY = sys.executable
SMALL = Limits(memory_bytes=256 * MiB, cpu=1.0, storage_bytes=64 * MiB)


def _alloc(n_bytes: int) -> list[str]:
    # Touch every page, so the memory is really charged.
    return [PY, "-c", f"b = bytearray({n_bytes}); b[::4096] = b'x' * len(b[::4096])"]


def test_oom_kill_at_the_profile_limit(backend: Backend) -> None:
    profile = load_profile("curriculum-guide")
    assert profile.memory_limit_bytes == 2 * GiB
    with backend.create(Limits.from_profile(profile)) as sb:
        result = run_command(sb, _alloc(3 * GiB), timeout=120)
    assert result.exit_code == 137
    assert result.reading.oom_kills >= 1
    peak = result.reading.peak_memory_bytes
    assert abs(peak - 2 * GiB) <= 0.02 * 2 * GiB, f"peak {peak} not within 2% of 2 GiB"
    # The host and hubprobe survive: the next sandbox runs normally.
    with backend.create(SMALL) as sb:
        assert run_command(sb, ["true"]).exit_code == 0


def test_inside_sees_its_own_limits(backend: Backend) -> None:
    code = (
        "import joblib, os, pathlib as p\n"
        "print(joblib.cpu_count(), os.cpu_count())\n"
        "print(p.Path('/sys/fs/cgroup/memory/memory.limit_in_bytes').read_text().strip())\n"
        "print(os.environ['MEM_LIMIT'], os.environ['CPU_LIMIT'], os.environ['HOME'] == os.getcwd())\n"
        "print(open('/proc/self/cgroup').read())\n"
    )
    limits = Limits.from_profile(load_profile("curriculum-guide"))
    with backend.create(limits) as sb:
        sb.spawn([PY, "-c", code], stdout=subprocess.PIPE)
        assert sb.process is not None
        out, _ = sb.process.communicate(timeout=60)
    lines = out.decode().splitlines()
    joblib_cpus, os_cpus = lines[0].split()
    assert int(joblib_cpus) == 1
    assert int(os_cpus) == os.cpu_count()
    assert lines[1] == str(2 * GiB)
    assert lines[2] == f"{2 * GiB} 1.0 True"
    assert "memory:/\n" in out.decode() + "\n"


def test_no_swap(backend: Backend) -> None:
    with backend.create(SMALL) as sb:
        sb.spawn(
            ["cat", "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"], stdout=subprocess.PIPE
        )
        assert sb.process is not None
        out, _ = sb.process.communicate(timeout=30)
    if out:  # present only where the kernel accounts swap
        assert int(out) == 256 * MiB
    assert "SwapTotal:             0 kB" in Path("/proc/meminfo").read_text()


def test_cpu_quota_caps_two_busy_processes(backend: Backend) -> None:
    busy = f"{PY} -c 'import time; t = time.time()\nwhile time.time() - t < 3: pass'"
    with backend.create(SMALL) as sb:
        result = run_command(sb, ["sh", "-c", f"{busy} & {busy} & wait"], timeout=60)
    r = result.reading
    assert result.exit_code == 0
    # At most the quota; and close to it, so the test cannot pass by doing nothing.
    assert 0.8 <= r.cpu_seconds / r.wall_seconds <= 1.1, r
    assert r.throttled_seconds > 0, r


def test_storage_full_gives_enospc(backend: Backend) -> None:
    code = (
        "import os\n"
        "st = os.statvfs('.')\n"
        "print(st.f_blocks * st.f_frsize)\n"
        "try:\n"
        "    with open('fill', 'wb') as f:\n"
        "        for _ in range(200):\n"
        "            f.write(b'x' * 2**20)\n"
        "            f.flush(); os.fsync(f.fileno())\n"
        "except OSError as e:\n"
        "    print(e.strerror)\n"
    )
    with backend.create(SMALL) as sb:
        sb.spawn([PY, "-c", code], stdout=subprocess.PIPE)
        assert sb.process is not None
        out, _ = sb.process.communicate(timeout=60)
    size, message = out.decode().splitlines()
    # ext4's own metadata takes a few percent of the image.
    assert 0.85 * 64 * MiB <= int(size) <= 64 * MiB
    assert message == "No space left on device"


def test_timeout_stops_and_cleans(backend: Backend) -> None:
    start = time.monotonic()
    with backend.create(SMALL) as sb:
        result = run_command(sb, ["sh", "-c", "sleep 30 & sleep 30"], timeout=1)
    assert result.timed_out
    assert result.exit_code == TIMEOUT_EXIT
    assert time.monotonic() - start < 10


def test_process_scope_kills_only_the_hog(backend: Backend) -> None:
    alloc = " ".join(f"'{a}'" for a in _alloc(512 * MiB))
    with backend.create(SMALL) as sb:
        sb.spawn(["sh", "-c", f"{alloc}; echo survived $?"], stdout=subprocess.PIPE)
        assert sb.process is not None
        out, _ = sb.process.communicate(timeout=60)
    assert out.decode().strip() == "survived 137"


def test_container_scope_kills_the_whole_session(backend: Backend) -> None:
    limits = Limits(memory_bytes=256 * MiB, cpu=1.0, storage_bytes=64 * MiB, oom_group=True)
    alloc = " ".join(f"'{a}'" for a in _alloc(512 * MiB))
    start = time.monotonic()
    with backend.create(limits) as sb:
        result = run_command(
            sb, ["sh", "-c", f"sleep 60 & {alloc}; echo survived; wait"], timeout=60
        )
    assert result.exit_code == 137
    assert result.reading.oom_kills >= 1
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_to_hubprobe_cleans_up(sig: str) -> None:
    import signal

    from leftovers import _hubprobe_cgroups, count

    before = count()
    proc = subprocess.Popen(
        [PY, "-m", "hubprobe", "sandbox", "--", "sh", "-c", "sleep 60 & sleep 60"],
        stderr=subprocess.PIPE,
    )

    def its_cgroups() -> list[str]:
        return [g for g in _hubprobe_cgroups() if f"hubprobe-{proc.pid}-" in g]

    deadline = time.monotonic() + 20
    while not its_cgroups() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert its_cgroups(), "the sandbox never started"
    time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + getattr(signal, sig), err
    assert its_cgroups() == []
    assert count() == before
    assert b"torn down" in err


def test_check_without_root_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    status = Cgroup1Backend().check()
    assert not status.usable
    assert "root" in status.reason
    assert "sudo" in status.fix


def test_a_sandbox_runs_one_command(backend: Backend) -> None:
    with backend.create(SMALL) as sb:
        sb.spawn(["true"])
        with pytest.raises(SandboxError, match="already runs"):
            sb.spawn(["true"])
