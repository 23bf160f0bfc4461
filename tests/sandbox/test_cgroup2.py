"""The cgroup2 backend: placement and limits against fixture trees, and for real where it works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubprobe.cgroup import fs
from hubprobe.cgroup.fs import CgroupMount, CpuReading, MemoryReading
from hubprobe.sandbox import Limits, SandboxError, common
from hubprobe.sandbox import cgroup2 as mod
from hubprobe.sandbox.cgroup2 import Cgroup2Backend, Place
from hubprobe.sandbox.common import NotUsable
from hubprobe.sandbox.run import run_command

MiB = 2**20
PY = sys.executable
SMALL = Limits(memory_bytes=256 * MiB, cpu=1.0, storage_bytes=64 * MiB)
STATUS = Cgroup2Backend().check()
real = pytest.mark.skipif(
    not STATUS.usable, reason=f"cgroup2 backend not usable here: {STATUS.reason}"
)


def group(
    d: Path,
    *,
    controllers: str = "cpu memory pids",
    enabled: str = "",
    procs: str = "",
    root: bool = False,
) -> Path:
    """A fixture v2 cgroup directory; the hierarchy's root has no cgroup.type."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup.controllers").write_text(controllers + "\n")
    (d / "cgroup.subtree_control").write_text(enabled + "\n")
    (d / "cgroup.procs").write_text(procs)
    if not root:
        (d / "cgroup.type").write_text("domain\n")
    return d


def v2_mount(point: Path) -> CgroupMount:
    return CgroupMount(point, 2, frozenset(), "")


def test_hybrid_machine_says_to_use_cgroup1(tmp_path: Path) -> None:
    top = group(tmp_path, controllers="hugetlb", root=True)
    with pytest.raises(NotUsable) as err:
        mod.choose_parent(top, top)
    assert "no memory or cpu controller" in err.value.reason
    assert "cgroup1" in err.value.fix


def test_root_cgroup_is_exempt_from_the_no_internal_processes_rule(tmp_path: Path) -> None:
    top = group(tmp_path, enabled="memory", procs="1\n42\n", root=True)
    assert mod.choose_parent(top, top) == (top, ("cpu",))


def test_already_enabled_needs_nothing(tmp_path: Path) -> None:
    top = group(tmp_path, enabled="cpu memory", root=True)
    assert mod.choose_parent(top, top) == (top, ())


def test_empty_cgroup_enables_its_own_subtree(tmp_path: Path) -> None:
    top = group(tmp_path, enabled="cpu memory", root=True)
    own = group(top / "leaf", procs="")
    assert mod.choose_parent(own, top) == (own, ("memory", "cpu"))


def test_busy_leaf_goes_beside_itself(tmp_path: Path) -> None:
    top = group(tmp_path, enabled="cpu memory", root=True)
    delegated = group(top / "delegated", enabled="cpu memory")
    own = group(delegated / "init", procs="7\n")
    assert mod.choose_parent(own, top) == (delegated, ())


def test_busy_namespace_root_explains_the_rule_and_the_way_out(tmp_path: Path) -> None:
    # A container's own cgroup namespace: "/" is not the hierarchy's root.
    top = group(tmp_path, procs="1\n23\n")
    with pytest.raises(NotUsable) as err:
        mod.choose_parent(top, top)
    assert "no internal processes" in err.value.reason
    assert "(2, ours among them)" in err.value.reason
    assert f"mkdir {top}/init" in err.value.fix
    assert "+memory +cpu" in err.value.fix


def test_read_only_cgroup_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = group(tmp_path, root=True)
    monkeypatch.setattr(mod.os, "access", lambda *_: False)
    with pytest.raises(NotUsable, match="not writable"):
        mod.choose_parent(top, top)


def test_own_group_from_proc_self_cgroup(tmp_path: Path) -> None:
    own = group(tmp_path / "user.slice" / "x.scope")
    mounts = [CgroupMount(Path("/sys/fs/cgroup/memory"), 1, frozenset({"memory"}), "memory")]
    with pytest.raises(NotUsable, match="no cgroup v2 hierarchy"):
        mod.find_own_group(mounts, {"": "/"})
    mounts.append(v2_mount(tmp_path))
    with pytest.raises(NotUsable, match="no 0:: line"):
        mod.find_own_group(mounts, {"memory": "/"})
    assert mod.find_own_group(mounts, {"": "/user.slice/x.scope"}) == (mounts[1], own)
    # The host's path in a container without a cgroup namespace: the mount root is ours.
    assert mod.find_own_group(mounts, {"": "/docker/abc"}) == (mounts[1], tmp_path)


def test_limits_as_v2_files(tmp_path: Path) -> None:
    g = tmp_path / "g"
    g.mkdir()
    (g / "memory.swap.max").write_text("max\n")
    limits = Limits(memory_bytes=2 * 2**30, cpu=0.5, storage_bytes=MiB, oom_group=True)
    mod.write_limits(g, limits)
    assert (g / "memory.max").read_text() == "2147483648"
    assert (g / "memory.swap.max").read_text() == "0"
    assert (g / "cpu.max").read_text() == "50000 100000"
    assert (g / "memory.oom.group").read_text() == "1"
    h = tmp_path / "h"
    h.mkdir()
    mod.write_limits(h, SMALL)  # no swap accounting, process-scoped OOM
    assert sorted(p.name for p in h.iterdir()) == ["cpu.max", "memory.max"]


def test_reading_without_memory_peak_uses_the_largest_usage_seen() -> None:
    mem = MemoryReading(usage_bytes=10, peak_bytes=None, limit_bytes=100, oom_kills=2)
    cpu = CpuReading(quota_cpus=1.0, usage_seconds=1.5, throttled_seconds=None)
    r = mod.reading_from(mem, cpu, peak_seen=70)
    assert (r.memory_bytes, r.peak_memory_bytes, r.oom_kills) == (10, 70, 2)
    assert (r.cpu_seconds, r.throttled_seconds, r.memory_limit_bytes) == (1.5, 0.0, 100)


def fixture_proc(tmp_path: Path, top: Path, own: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mounts").write_text(f"cgroup2 {top} cgroup2 rw,nosuid 0 0\n")
    (proc / "self" / "cgroup").write_text(f"0::{own}\n")
    return proc


def test_check_against_a_fixture_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(common.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(common, "_LOOP_CONTROL", tmp_path)  # exists
    top = group(tmp_path / "cg", enabled="memory", procs="1\n", root=True)
    status = Cgroup2Backend(proc=fixture_proc(tmp_path, top, "/")).check()
    assert status.usable, status
    assert status.reason == f"cgroup v2 sandboxes under {top}; will enable cpu there"


def test_check_names_missing_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(common.shutil, "which", lambda name: None if name == "losetup" else name)
    top = group(tmp_path / "cg", root=True)
    status = Cgroup2Backend(proc=fixture_proc(tmp_path, top, "/")).check()
    assert not status.usable
    assert status.reason == "commands not found: losetup"
    assert "apt-get install" in status.fix


def test_check_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod.os, "geteuid", lambda: 1000)
    status = Cgroup2Backend().check()
    assert not status.usable
    assert "root" in status.reason
    assert "systemd" in status.fix


def test_create_writes_limits_and_enables_controllers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = group(tmp_path / "cg", enabled="", root=True)
    place = Place(v2_mount(top), top, ("memory", "cpu"))
    removed: list[Path] = []
    # Fixture directories hold plain files, so rmdir would refuse: record instead.
    monkeypatch.setattr(mod, "remove_cgroup", removed.append)
    sb = mod.Cgroup2Sandbox(SMALL, place, workdir=tmp_path)
    g = sb.group
    assert (top / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert g.parent == top
    assert g.name.startswith(f"hubprobe-{os.getpid()}-")
    assert (g / "memory.max").read_text() == str(256 * MiB)
    assert (g / "cpu.max").read_text() == "100000 100000"
    assert Path(sb.home).is_dir()
    assert Path(sb.home).parent.parent == tmp_path
    (g / "memory.current").write_text("4096\n")
    (g / "memory.peak").write_text("8192\n")
    (g / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (g / "cpu.stat").write_text("usage_usec 2500000\nthrottled_usec 500000\n")
    r = sb.reading()
    assert (r.memory_bytes, r.peak_memory_bytes, r.oom_kills) == (4096, 8192, 1)
    assert (r.cpu_seconds, r.throttled_seconds) == (2.5, 0.5)
    assert r.memory_limit_bytes == 256 * MiB
    sb.close()
    assert removed == [g]
    assert not Path(sb.home).exists()
    with pytest.raises(SandboxError, match="gone"):
        _ = sb.group


def test_failed_enable_says_what_failed(tmp_path: Path) -> None:
    top = tmp_path / "cg"
    top.mkdir()
    (top / "cgroup.subtree_control").mkdir()  # writing to a directory fails
    place = Place(v2_mount(top), top, ("memory",))
    with pytest.raises(SandboxError, match="cannot enable memory"):
        mod.Cgroup2Sandbox(SMALL, place, workdir=tmp_path)
    assert list(tmp_path.glob("hubprobe-*")) == []


# -- for real, where this machine offers cgroup v2 memory and cpu --------------


def _alloc(n_bytes: int) -> list[str]:
    return [PY, "-c", f"b = bytearray({n_bytes}); b[::4096] = b'x' * len(b[::4096])"]


@real
@pytest.mark.sandbox
def test_real_oom_kill_and_readings() -> None:
    with Cgroup2Backend().create(SMALL) as sb:
        result = run_command(sb, _alloc(512 * MiB), timeout=120)
    assert result.exit_code == 137
    assert result.reading.oom_kills >= 1
    assert result.reading.memory_limit_bytes == 256 * MiB


@real
@pytest.mark.sandbox
def test_real_inside_sees_its_own_limits() -> None:
    point = next(m.mountpoint for m in fs.cgroup_mounts() if m.version == 2)
    with Cgroup2Backend().create(SMALL) as sb:
        sb.spawn(
            ["cat", "/proc/self/cgroup", f"{point}/memory.max", f"{point}/cpu.max"],
            stdout=subprocess.PIPE,
        )
        assert sb.process is not None
        out, _ = sb.process.communicate(timeout=60)
    lines = out.decode().splitlines()
    assert "0::/" in lines
    assert lines[-2:] == [str(256 * MiB), "100000 100000"]


@real
@pytest.mark.sandbox
def test_real_container_scope_kills_the_whole_session() -> None:
    limits = Limits(memory_bytes=256 * MiB, cpu=1.0, storage_bytes=64 * MiB, oom_group=True)
    alloc = " ".join(f"'{a}'" for a in _alloc(512 * MiB))
    with Cgroup2Backend().create(limits) as sb:
        result = run_command(sb, ["sh", "-c", f"sleep 60 & {alloc}; wait"], timeout=60)
    assert result.exit_code == 137
    assert result.reading.oom_kills >= 1
