"""Code inside the oci sandbox tries to get out; every attempt must be blocked.

Each attempt is a small Python program that prints ``ESCAPED`` when it
succeeds. It runs three ways: on the host as root against real targets of
the same kind (it must escape there: the attempt is real), inside the
sandbox as a command, and as a cell of a notebook under ``hubprobe check``
(it must be blocked both times, and nothing it aimed at may have changed).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import leftovers
import nbformat
import pytest

from hubprobe.cgroup import fs
from hubprobe.cgroup.locate import own_groups
from hubprobe.check.run import check_notebook
from hubprobe.profiles import load_profile
from hubprobe.sandbox import Backend, Limits, SandboxError, get_backend

MiB = 2**20
MARK = "98765432"  # the daemon's sleep: found by its argv after the run

#: name -> the attempt; ``T`` is a JSON dict of targets, filled in per run.
ATTEMPTS = {
    "write-outside-home": """
        for path in T["writable"]:
            try:
                with open(path, "w") as f:
                    f.write("x")
                print("ESCAPED wrote", path)
            except OSError as exc:
                print("blocked", path, exc)
    """,
    "read-etc-shadow": """
        try:
            print("ESCAPED read", len(open("/etc/shadow").read()), "bytes")
        except OSError as exc:
            print("blocked", exc)
    """,
    "see-and-kill-host-process": """
        import os, signal
        pid = T["decoy_pid"]
        if os.path.exists(f"/proc/{pid}"):
            print("ESCAPED sees", pid)
        try:
            os.kill(pid, signal.SIGKILL)
            print("ESCAPED killed", pid)
        except OSError as exc:
            print("blocked", exc)
    """,
    "connect-to-host-loopback": """
        import socket
        try:
            socket.create_connection(("127.0.0.1", T["decoy_port"]), timeout=2).close()
            print("ESCAPED connected")
        except OSError as exc:
            print("blocked", exc)
    """,
    "raise-memory-limit": """
        import glob
        paths = T["memory_limits"] + glob.glob("/proc/*/root/sys/fs/cgroup/memory/memory.limit_in_bytes")
        paths += glob.glob("/proc/*/root/sys/fs/cgroup/memory.max")
        for path in sorted(set(paths)):
            try:
                with open(path, "w") as f:
                    f.write(str(8 << 30))
                print("ESCAPED raised", path)
            except OSError as exc:
                print("blocked", path, exc)
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        # MS_REMOUNT | MS_BIND: make the read-only cgroup mount writable.
        if libc.mount(None, b"/sys/fs/cgroup/memory", None, 0x20 | 0x1000, None) == 0:
            print("ESCAPED remounted")
    """,
    "raise-cpu-limit": """
        import glob
        paths = T["cpu_quotas"] + glob.glob("/proc/*/root/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        for path in sorted(set(paths)):
            try:
                with open(path, "w") as f:
                    f.write("-1")
                print("ESCAPED raised", path)
            except OSError as exc:
                print("blocked", path, exc)
    """,
    "move-to-another-cgroup": """
        import glob, os
        paths = T["procs_files"] + glob.glob("/proc/*/root/sys/fs/cgroup/memory/cgroup.procs")
        for path in sorted(set(paths)):
            try:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
                print("ESCAPED moved via", path)
            except OSError as exc:
                print("blocked", path, exc)
    """,
    "freeze-itself": """
        for path in T["freezer_states"]:
            try:
                with open(path, "w") as f:
                    f.write("FROZEN")
                print("ESCAPED froze", path)
            except OSError as exc:
                print("blocked", path, exc)
    """,
    "leave-a-daemon": f"""
        import os, subprocess
        # Double fork and a new session: the daemon outlives its parent.
        subprocess.Popen(["/bin/sh", "-c", "setsid sleep {MARK} </dev/null >/dev/null 2>&1 &"]).wait()
        print("started")
    """,
}


def program(name: str, targets: dict[str, object]) -> str:
    return f"T = {json.dumps(targets)}\n" + textwrap.dedent(ATTEMPTS[name])


def daemons() -> list[int]:
    return leftovers.processes_running("sleep", MARK)


@pytest.fixture(scope="module")
def oci() -> Backend:
    try:
        backend = get_backend("oci")
    except SandboxError as exc:
        pytest.skip(str(exc))
    status = backend.check()
    if not status.usable:
        pytest.skip(f"oci backend not usable here: {status.reason}")
    return backend


@pytest.fixture(scope="module")
def decoys() -> Iterator[tuple[int, int]]:
    """A host process and a server on the host's 127.0.0.1 (pid, port)."""
    sleeper = subprocess.Popen(["sleep", "600"])
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sleeper.pid, server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()
    sleeper.kill()
    sleeper.wait()


@pytest.fixture(scope="module")
def host_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Real targets on the host for the same attempts: scratch cgroups and a writable folder."""
    name = f"hubprobe-{os.getpid()}-escape"
    groups = own_groups(version=1)
    mounts = fs.cgroup_mounts()
    freezer = next(m.mountpoint for m in mounts if "freezer" in m.controllers)
    made = [groups.memory / name, groups.cpu / name, freezer / name]  # type: ignore[operator]
    for group in made:
        group.mkdir()
    scratch = tmp_path_factory.mktemp("escape")
    yield {
        "writable": [str(scratch / "written")],
        "memory_limits": [str(made[0] / "memory.limit_in_bytes")],
        "cpu_quotas": [str(made[1] / "cpu.cfs_quota_us")],
        "procs_files": [str(made[0] / "cgroup.procs")],
        "freezer_states": [str(made[2] / "freezer.state")],
    }
    (made[2] / "freezer.state").write_text("THAWED")
    for group in made:
        for pid in fs.pids_in(group):  # the outside run moved itself there; it has ended
            with __import__("contextlib").suppress(OSError):
                (group.parent / "cgroup.procs").write_text(str(pid))
        deadline = time.monotonic() + 5
        while group.exists() and time.monotonic() < deadline:
            try:
                group.rmdir()
            except OSError:
                time.sleep(0.02)


@pytest.fixture(scope="module")
def shielded_folder() -> Iterator[Path]:
    """A host folder anyone may write, outside the home: only the read-only mount protects it."""
    folder = Path(f"/var/lib/hubprobe-{os.getpid()}-escape")
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    yield folder
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


def inside_targets(shielded: Path) -> dict[str, object]:
    return {
        "writable": [
            str(shielded / "written"), "/etc/hubprobe-escape", "/usr/hubprobe-escape",
            "/root/hubprobe-escape", str(Path(sys.prefix) / "hubprobe-escape"),
            str(Path(__file__).with_name("hubprobe-escape")),
        ],
        "memory_limits": [
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
        ],
        "cpu_quotas": ["/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"],
        "procs_files": ["/sys/fs/cgroup/memory/cgroup.procs", "/sys/fs/cgroup/cpu/cgroup.procs"],
        "freezer_states": ["/sys/fs/cgroup/freezer/freezer.state"],
    }  # fmt: skip


def nothing_changed(targets: dict[str, object]) -> None:
    for path in targets["writable"]:  # type: ignore[attr-defined]
        assert not Path(path).exists(), f"{path} was written on the host"
    assert daemons() == [], "a daemon started inside outlived the sandbox"


LIMITS = Limits(memory_bytes=512 * MiB, cpu=1.0, storage_bytes=64 * MiB, pids=256)


@pytest.mark.sandbox
@pytest.mark.parametrize("name", sorted(ATTEMPTS))
def test_the_attempt_escapes_on_the_host(name: str, host_targets: dict[str, object]) -> None:
    decoy = subprocess.Popen(["sleep", "600"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    targets = {**host_targets, "decoy_pid": decoy.pid, "decoy_port": listener.getsockname()[1]}
    try:
        out = subprocess.run(
            [sys.executable, "-c", program(name, targets)],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
    finally:
        listener.close()
        decoy.kill()
        decoy.wait()
        for pid in daemons():
            os.kill(pid, 9)
    if name == "leave-a-daemon":
        assert "started" in out
    else:
        assert "ESCAPED" in out, out


@pytest.mark.sandbox
@pytest.mark.parametrize("name", sorted(ATTEMPTS))
def test_blocked_as_a_sandboxed_command(
    name: str, oci: Backend, decoys: tuple[int, int], shielded_folder: Path
) -> None:
    pid, port = decoys
    targets = {**inside_targets(shielded_folder), "decoy_pid": pid, "decoy_port": port}
    with oci.create(LIMITS) as sandbox:
        proc = sandbox.spawn(
            [sys.executable, "-c", program(name, targets)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out = proc.communicate(timeout=120)[0].decode()
        reading = sandbox.reading()
    assert "ESCAPED" not in out, out
    assert "Traceback" not in out, out
    assert reading.memory_limit_bytes == LIMITS.memory_bytes, "the limit stayed the sandbox's"
    assert Path(f"/proc/{pid}").exists(), "the host's decoy process lives"
    nothing_changed(targets)


@pytest.fixture(scope="module")
def checked(
    oci: Backend,
    decoys: tuple[int, int],
    shielded_folder: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Every attempt as a cell of one notebook under `check`: name -> the cell's output."""
    pid, port = decoys
    targets = {**inside_targets(shielded_folder), "decoy_pid": pid, "decoy_port": port}
    names = sorted(ATTEMPTS)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(program(n, targets)) for n in names]
    folder = tmp_path_factory.mktemp("attempts")
    path = folder / "attempts.ipynb"
    nbformat.write(nb, path)
    result = check_notebook(path, load_profile("curriculum-guide"), oci, cell_timeout=120)
    outputs = {}
    for name, cell in zip(names, result.cells, strict=True):
        outputs[name] = "".join(o.get("text", "") for o in cell.outputs) + f" [{cell.outcome}]"
    outputs["__verdict__"] = result.verdict.kind
    return outputs


@pytest.mark.sandbox
@pytest.mark.parametrize("name", sorted(ATTEMPTS))
def test_blocked_as_a_cell_under_check(
    name: str, checked: dict[str, str], shielded_folder: Path, decoys: tuple[int, int]
) -> None:
    out = checked[name]
    assert "ESCAPED" not in out, out
    assert out.endswith("[ok]"), out
    assert Path(f"/proc/{decoys[0]}").exists()
    nothing_changed(inside_targets(shielded_folder))
