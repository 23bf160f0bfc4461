"""docker/podman backends: command lines, checks and a sandbox's life against a fake engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hubprobe.sandbox import Limits, SandboxError
from hubprobe.sandbox import engine as mod
from hubprobe.sandbox.engine import DockerBackend, PodmanBackend
from hubprobe.sandbox.run import run_command

GiB = 2**30
MiB = 2**20
PY = sys.executable
LIMITS = Limits(
    memory_bytes=2 * GiB,
    cpu=1.0,
    storage_bytes=64 * MiB,
    env={"MEM_LIMIT": str(2 * GiB), "CPU_LIMIT": "1.0"},
)
DOCKER = DockerBackend().check()
real = pytest.mark.skipif(
    not DOCKER.usable, reason=f"docker backend not usable here: {DOCKER.reason}"
)
REAL_POPEN = subprocess.Popen
NO_DAEMON = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
    " Is the docker daemon running?"
)


def test_run_command_line() -> None:
    argv = mod.run_argv("docker", "hubprobe-1-ab", "hubprobe-1-ab-home", LIMITS, "img:1")
    assert argv[:3] == ["docker", "run", "--detach"]

    def value(flag: str) -> str:
        return argv[argv.index(flag) + 1]

    assert value("--name") == "hubprobe-1-ab"
    assert value("--memory") == value("--memory-swap") == str(2 * GiB)  # no swap
    assert value("--cpus") == "1"
    assert "--oom-kill-disable=false" in argv
    assert value("--mount") == "type=volume,src=hubprobe-1-ab-home,dst=/home/jovyan"
    envs = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert envs == ["HOME=/home/jovyan", "CPU_LIMIT=1.0", f"MEM_LIMIT={2 * GiB}"]
    assert argv[-4:] == ["--entrypoint", "sleep", "img:1", "infinity"]


def test_exec_and_volume_command_lines() -> None:
    argv = mod.exec_argv("podman", "c", ["python3", "-V"], {"B": "2", "A": "1"}, "/home/jovyan")
    assert argv == [
        "podman", "exec", "--workdir", "/home/jovyan",
        "--env", "A=1", "--env", "B=2", "c", "python3", "-V",
    ]  # fmt: skip
    assert "--interactive" in mod.exec_argv("docker", "c", ["cat"], {}, "/", interactive=True)
    assert mod.volume_argv("docker", "v", "/dev/loop7")[-5:] == [
        "--opt", "type=ext4", "--opt", "device=/dev/loop7", "v",
    ]  # fmt: skip


def test_image_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBPROBE_IMAGE", raising=False)
    assert mod.image() == "python:3.11-slim"
    monkeypatch.setenv("HUBPROBE_IMAGE", "quay.io/jupyter/scipy-notebook:2024-10-07")
    assert mod.image() == "quay.io/jupyter/scipy-notebook:2024-10-07"


def test_engines_that_cannot_mount_our_home() -> None:
    rootless = {"Name": "box", "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless"]}
    problem = mod.engine_problem("docker", rootless, "box")
    assert problem is not None
    assert "rootless" in problem.reason
    desktop = {"Name": "docker-desktop", "SecurityOptions": []}
    problem = mod.engine_problem("docker", desktop, "laptop")
    assert problem is not None
    assert "another host (docker-desktop)" in problem.reason
    podman = {"host": {"hostname": "box", "security": {"rootless": True}}}
    assert mod.engine_problem("podman", podman, "box") is not None
    assert mod.engine_problem("podman", {"host": {"hostname": "box"}}, "box") is None
    assert mod.engine_problem("docker", {"Name": "box"}, "box") is None


Answers = dict[tuple[str, ...], tuple[int, str, str]]
Calls = list[list[str]]


class FakeEngine:
    """Answers engine, losetup and mkfs commands; records every command line."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.calls: Calls = []
        self._real = subprocess.run

    def __call__(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        if argv[0] == "mkfs.ext4":
            return self._real(argv, **kwargs)  # type: ignore[call-overload,no-any-return]
        self.calls.append(argv)
        for prefix, (code, out, err) in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                return subprocess.CompletedProcess(argv, code, out, err)
        return subprocess.CompletedProcess(argv, 0, "", "")


HEALTHY: Answers = {
    ("docker", "info"): (0, '{"Name": "box", "SecurityOptions": []}', ""),
    ("docker", "image", "inspect"): (0, "sha256:abc\n", ""),
    ("losetup", "--find"): (0, "/dev/loop7\n", ""),
    ("docker", "run"): (0, "0123abcd\n", ""),
}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Callable[[Answers], FakeEngine]:
    monkeypatch.setattr(mod.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(mod.socket, "gethostname", lambda: "box")
    monkeypatch.delenv("HUBPROBE_IMAGE", raising=False)

    def install(answers: Answers) -> FakeEngine:
        fake = FakeEngine(answers)
        monkeypatch.setattr(mod.subprocess, "run", fake)
        return fake

    return install


def test_check_usable(engine: Callable[[Answers], FakeEngine]) -> None:
    engine(HEALTHY)
    status = DockerBackend().check()
    assert status.usable, status
    assert status.reason == "docker engine on this host, image python:3.11-slim"


def test_check_without_the_daemon(engine: Callable[[Answers], FakeEngine]) -> None:
    engine({("docker", "info"): (1, "Client: ...", NO_DAEMON + "\n")})
    status = DockerBackend().check()
    assert not status.usable
    assert status.reason == NO_DAEMON
    assert "start the Docker engine" in status.fix
    assert "another backend" in status.fix


def test_check_without_the_image(engine: Callable[[Answers], FakeEngine]) -> None:
    engine({**HEALTHY, ("docker", "image", "inspect"): (1, "", "Error: No such image")})
    status = DockerBackend().check()
    assert status.reason == "the image python:3.11-slim is not here"
    assert "`docker pull python:3.11-slim`" in status.fix
    assert "HUBPROBE_IMAGE" in status.fix


def test_check_without_root_or_client(
    engine: Callable[[Answers], FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine(HEALTHY)
    monkeypatch.setattr(mod.os, "geteuid", lambda: 1000)
    status = PodmanBackend().check()
    assert "needs root" in status.reason
    assert "systemd backend" in status.fix
    monkeypatch.setattr(mod.shutil, "which", lambda _name: None)
    assert PodmanBackend().check().reason == "no podman command"


def test_check_on_this_machine_says_why() -> None:
    for backend in (DockerBackend(), PodmanBackend()):
        status = backend.check()
        assert status.usable or (status.reason and status.fix), status
    if shutil.which("docker") and os.geteuid() == 0 and "daemon" in DOCKER.reason:
        assert "start the Docker engine" in DOCKER.fix


def test_a_sandbox_life_against_a_fake_engine(
    engine: Callable[[Answers], FakeEngine], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The "container" is this test process: its real cgroup files are read.
    fake = engine(
        {
            **HEALTHY,
            ("docker", "inspect", "--format", "{{.State.Pid}}"): (0, f"{os.getpid()}\n", ""),
        }
    )
    popens: Calls = []

    def popen(argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        popens.append(list(argv))
        assert "env" not in kwargs  # the engine's client runs with our environment
        return REAL_POPEN(["true"])

    sb = DockerBackend().create(LIMITS, workdir=tmp_path)
    monkeypatch.setattr(mod.subprocess, "Popen", popen)  # after mkfs.ext4 ran for real
    name = sb.name
    image = next(tmp_path.glob("hubprobe-*/home.img"))
    assert [c[:3] for c in fake.calls] == [
        ["losetup", "--find", "--show"],
        ["docker", "volume", "create"],
        ["docker", "run", "--detach"],
    ]
    assert fake.calls[0][-1] == str(image)
    assert fake.calls[1][-3:] == ["--opt", "device=/dev/loop7", f"{name}-home"]
    assert sb.home == "/home/jovyan"

    sb.spawn(["python3", "-V"], env={"EXTRA": "1"})
    assert sb.wait(timeout=10) == 0
    assert popens[0][:2] == ["docker", "exec"]
    assert popens[0][-3:] == [name, "python3", "-V"]
    assert "EXTRA=1" in popens[0]
    assert "HOME=/home/jovyan" in popens[0]
    assert not any(a.startswith("PATH=") for a in popens[0])  # the image's own PATH stays

    reading = sb.reading()
    assert reading.memory_bytes > 0
    assert reading.cpu_seconds > 0

    # Gone (say, an OOM kill took the whole container): inspect's OOMKilled remains.
    sb._groups = None
    fake.answers[("docker", "inspect", "--format", "{{.State.Pid}}")] = (0, "0\n", "")
    fake.answers[("docker", "inspect", "--format", "{{.State.OOMKilled}}")] = (0, "true\n", "")
    after = sb.reading()
    assert after.memory_bytes == 0
    assert after.oom_kills >= 1
    assert after.cpu_seconds == reading.cpu_seconds

    fake.calls.clear()
    sb.close()
    assert fake.calls == [
        ["docker", "rm", "--force", name],
        ["docker", "volume", "rm", "--force", f"{name}-home"],
        ["losetup", "--detach", "/dev/loop7"],
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_undoes_what_was_made(
    engine: Callable[[Answers], FakeEngine], tmp_path: Path
) -> None:
    fake = engine({**HEALTHY, ("docker", "run"): (125, "", "docker: Error response\nbad --cpus\n")})
    with pytest.raises(
        SandboxError, match=re.escape("`docker run --detach ...` failed: bad --cpus")
    ):
        DockerBackend().create(LIMITS, workdir=tmp_path)
    assert [c[:3] for c in fake.calls[-2:]] == [
        ["docker", "volume", "rm"],
        ["losetup", "--detach", "/dev/loop7"],
    ]
    assert list(tmp_path.iterdir()) == []


# -- for real, where an engine runs on this host --------------------------------


@real
@pytest.mark.sandbox
def test_real_oom_kill_in_a_container() -> None:
    limits = Limits(memory_bytes=256 * MiB, cpu=1.0, storage_bytes=64 * MiB)
    alloc = f"b = bytearray({512 * MiB}); b[::4096] = b'x' * len(b[::4096])"
    with DockerBackend().create(limits) as sb:
        result = run_command(sb, ["python3", "-c", alloc], timeout=120)
    assert result.exit_code == 137
    assert result.reading.oom_kills >= 1


@real
@pytest.mark.sandbox
def test_real_home_is_the_profile_size() -> None:
    limits = Limits(memory_bytes=256 * MiB, cpu=1.0, storage_bytes=64 * MiB)
    code = "import os; s = os.statvfs('.'); print(s.f_blocks * s.f_frsize)"
    with DockerBackend().create(limits) as sb:
        child = sb.spawn(["python3", "-c", code], stdout=subprocess.PIPE)
        out, _ = child.communicate(timeout=60)
    assert 0.85 * 64 * MiB <= int(out) <= 64 * MiB
