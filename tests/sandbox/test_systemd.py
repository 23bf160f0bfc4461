"""The systemd backend: command line, checks against fake systemctl answers, the scope holder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hubprobe.sandbox import Limits, SandboxError
from hubprobe.sandbox import systemd as mod
from hubprobe.sandbox.run import run_command
from hubprobe.sandbox.systemd import SystemdBackend, SystemdSandbox

GiB = 2**30
MiB = 2**20
PY = sys.executable
LIMITS = Limits(memory_bytes=2 * GiB, cpu=0.5, storage_bytes=GiB)
STATUS = SystemdBackend().check()
real = pytest.mark.skipif(
    not STATUS.usable, reason=f"systemd backend not usable here: {STATUS.reason}"
)

Answers = dict[tuple[str, ...], tuple[int, str, str]]


def fake_run(answers: Answers) -> Callable[..., subprocess.CompletedProcess[str]]:
    """A stand-in for subprocess.run: (returncode, stdout, stderr) per command line."""

    def run(argv: Sequence[str], **_: object) -> subprocess.CompletedProcess[str]:
        code, out, err = answers.get(tuple(argv), (1, "", f"unexpected: {argv}"))
        return subprocess.CompletedProcess(list(argv), code, out, err)

    return run


def test_parse_version_and_properties() -> None:
    assert mod.parse_version("systemd 252 (252.38-1~deb12u1)\n+PAM +AUDIT") == 252
    assert mod.parse_version("bash: systemd-run: not found") is None
    text = "ControlGroup=/user.slice/u.scope\nMemoryPeak=[not set]\nEnv=A=B\n"
    assert mod.parse_properties(text) == {
        "ControlGroup": "/user.slice/u.scope",
        "MemoryPeak": "[not set]",
        "Env": "A=B",
    }


def _props(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[: argv.index("--")]) if a == "-p"]


def test_scope_command_line() -> None:
    argv = mod.scope_argv("hubprobe-1-ab", LIMITS, ["python3", "-c", "pass"], 255)
    assert argv[:5] == ["systemd-run", "--user", "--scope", "--quiet", "--collect"]
    assert argv[argv.index("--unit") + 1] == "hubprobe-1-ab"
    assert _props(argv) == [
        f"MemoryMax={2 * GiB}",
        "MemorySwapMax=0",
        "CPUQuota=50%",
        "OOMPolicy=continue",
    ]
    tail = argv[argv.index("--") + 1 :]
    assert tail[:2] == ["/bin/sh", "-c"]
    assert tail[3:] == ["hubprobe-hold", "python3", "-c", "pass"]


def test_scope_models_the_container_oom_scope() -> None:
    limits = Limits(memory_bytes=GiB, cpu=1 / 3, storage_bytes=GiB, oom_group=True)
    props = _props(mod.scope_argv("u", limits, ["true"], None))
    assert "OOMPolicy=kill" in props
    assert "CPUQuota=33.33%" in props


def test_old_systemd_has_no_oom_policy_for_scopes() -> None:
    assert not any(p.startswith("OOMPolicy") for p in _props(mod.scope_argv("u", LIMITS, [], 250)))
    limits = Limits(memory_bytes=GiB, cpu=1.0, storage_bytes=GiB, oom_group=True)
    with pytest.raises(SandboxError, match="OOMPolicy= needs systemd >= 252"):
        mod.scope_argv("u", limits, [], 250)
    with pytest.raises(SandboxError, match="cgroup2 or cgroup1"):
        SystemdSandbox(limits, version=250)


def fixture_machine(tmp_path: Path, init: str = "systemd", controllers: str = "cpu memory") -> Path:
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "comm").write_text(f"{init}\n")
    (proc / "self").mkdir()
    (proc / "self" / "mounts").write_text(f"cgroup2 {tmp_path}/cg cgroup2 rw 0 0\n")
    manager = tmp_path / "cg" / "user.slice" / "user@1000.service"
    manager.mkdir(parents=True)
    (manager / "cgroup.controllers").write_text(f"{controllers} pids\n")
    return proc


RUNNING: Answers = {
    ("systemctl", "--user", "is-system-running"): (0, "running\n", ""),
    ("systemctl", "--user", "show", "-p", "ControlGroup"): (
        0,
        "ControlGroup=/user.slice/user@1000.service\n",
        "",
    ),
    ("systemd-run", "--version"): (0, "systemd 255 (255.4-1ubuntu8)\n", ""),
}


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> Callable[[Answers], None]:
    monkeypatch.setattr(mod.shutil, "which", lambda name: f"/usr/bin/{name}")

    def answer(answers: Answers) -> None:
        monkeypatch.setattr(mod.subprocess, "run", fake_run(answers))

    return answer


def test_check_usable(tmp_path: Path, tools: Callable[[Answers], None]) -> None:
    tools(RUNNING)
    status = SystemdBackend(proc=fixture_machine(tmp_path)).check()
    assert status.usable, status
    assert status.reason == "systemd 255 user manager with memory and cpu delegated"


def test_check_without_systemd_as_init(tmp_path: Path, tools: Callable[[Answers], None]) -> None:
    tools(RUNNING)
    status = SystemdBackend(proc=fixture_machine(tmp_path, init="tini")).check()
    assert not status.usable
    assert status.reason == "systemd is not PID 1 here (PID 1 is tini)"


def test_check_without_a_user_manager(tmp_path: Path, tools: Callable[[Answers], None]) -> None:
    answers = dict(RUNNING)
    answers["systemctl", "--user", "is-system-running"] = (
        1,
        "",
        "Failed to connect to bus: No medium found\n",
    )
    tools(answers)
    status = SystemdBackend(proc=fixture_machine(tmp_path)).check()
    assert not status.usable
    assert (
        status.reason
        == "no systemd user manager answers here (Failed to connect to bus: No medium found)"
    )
    assert "loginctl enable-linger" in status.fix


def test_degraded_manager_still_answers(tmp_path: Path, tools: Callable[[Answers], None]) -> None:
    answers = dict(RUNNING)
    answers["systemctl", "--user", "is-system-running"] = (1, "degraded\n", "")
    tools(answers)
    assert SystemdBackend(proc=fixture_machine(tmp_path)).check().usable


def test_check_without_cpu_delegation(tmp_path: Path, tools: Callable[[Answers], None]) -> None:
    tools(RUNNING)
    status = SystemdBackend(proc=fixture_machine(tmp_path, controllers="memory")).check()
    assert not status.usable
    assert "cpu controller is not delegated" in status.reason
    assert "Delegate=cpu cpuset io memory pids" in status.fix


def test_check_without_systemd_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod.shutil, "which", lambda _name: None)
    status = SystemdBackend().check()
    assert status.reason == "commands not found: systemd-run, systemctl"


def test_check_on_this_machine_says_why() -> None:
    status = SystemdBackend().check()
    assert status.usable or (status.reason and status.fix), status


def test_readings_from_the_scope_files_and_after_it_is_gone(tmp_path: Path) -> None:
    sb = SystemdSandbox(LIMITS, version=255, workdir=tmp_path)
    assert Path(sb.home).is_dir()
    assert sb.unit.startswith(f"hubprobe-{os.getpid()}-")
    assert sb.unit.endswith(".scope")
    scope = tmp_path / "scope"
    scope.mkdir()
    files = {
        "memory.current": "1000\n",
        "memory.peak": "5000\n",
        "memory.max": f"{2 * GiB}\n",
        "memory.events": "oom 0\noom_kill 0\n",
        "cpu.stat": "usage_usec 1000000\nthrottled_usec 0\n",
    }
    for name, text in files.items():
        (scope / name).write_text(text)
    sb._group = scope  # what systemctl show would have given
    r = sb.reading()
    assert (r.memory_bytes, r.peak_memory_bytes, r.cpu_seconds) == (1000, 5000, 1.0)
    # OOMPolicy=kill ended the scope: its files are gone, the last reading stays.
    for path in scope.iterdir():
        path.unlink()
    after = sb.reading()
    assert (after.memory_bytes, after.peak_memory_bytes, after.cpu_seconds) == (0, 5000, 1.0)
    sb.close()
    assert list(tmp_path.glob("hubprobe-*")) == []


def test_reading_when_the_scope_ended_unseen(
    tmp_path: Path, tools: Callable[[Answers], None]
) -> None:
    # The whole scope was OOM-killed before any reading: systemctl knows it no more.
    tools({})  # every systemctl call fails, `show` included
    sb = SystemdSandbox(LIMITS, version=255, workdir=tmp_path)
    sb.process = subprocess.Popen(["sh", "-c", "kill -9 $$"])
    sb.process.wait()
    r = sb.reading()
    assert (r.memory_bytes, r.peak_memory_bytes, r.oom_kills) == (0, 0, 1)
    assert r.memory_limit_bytes == 2 * GiB
    sb.close()


# -- the scope holder, for real (it is plain /bin/sh) ---------------------------


def _holders(fifo: Path) -> list[int]:
    """Processes with ``fifo`` open."""
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if fd.readlink() == fifo:
                found.append(int(fd.parent.parent.name))
        except OSError:
            continue
    return found


def test_holder_outlives_the_command_until_the_fifo_closes(tmp_path: Path) -> None:
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    ours = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
    try:
        child = subprocess.run(
            [
                "/bin/sh",
                "-c",
                mod._HOLD,
                "hubprobe-hold",
                "sh",
                "-c",
                'echo "$0" "$HUBPROBE_HOLD"; exit 3',
                "x",
            ],
            env={**os.environ, "HUBPROBE_HOLD": str(fifo)},
            capture_output=True,
            timeout=10,
            check=False,
        )
        # The command's status and arguments, without our variable; and
        # capture_output returned, so the holder kept none of its pipes.
        assert (child.returncode, child.stdout) == (3, b"x \n")
        deadline = time.monotonic() + 5
        while len(_holders(fifo)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        holders = [p for p in _holders(fifo) if p != os.getpid()]
        assert len(holders) == 1
        assert Path(f"/proc/{holders[0]}/comm").read_text().strip() == "cat"
    finally:
        os.close(ours)
    deadline = time.monotonic() + 5
    while _holders(fifo) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _holders(fifo) == []


# -- for real, where a systemd user manager answers -----------------------------


@real
@pytest.mark.sandbox
def test_real_oom_kill_is_counted() -> None:
    limits = Limits(memory_bytes=256 * MiB, cpu=1.0, storage_bytes=GiB)
    alloc = f"b = bytearray({512 * MiB}); b[::4096] = b'x' * len(b[::4096])"
    with SystemdBackend().create(limits) as sb:
        result = run_command(sb, [PY, "-c", alloc], timeout=120)
    assert result.exit_code == 137
    assert result.reading.oom_kills >= 1
    assert result.reading.memory_limit_bytes == 256 * MiB


@real
@pytest.mark.sandbox
def test_real_cpu_quota_and_reading_after_exit() -> None:
    busy = "import time\nt = time.time()\nwhile time.time() - t < 2: pass"
    with SystemdBackend().create(LIMITS) as sb:
        result = run_command(sb, [PY, "-c", busy], timeout=60)
    assert result.exit_code == 0
    assert result.reading.cpu_seconds <= 0.6 * result.reading.wall_seconds
    assert result.reading.throttled_seconds > 0
