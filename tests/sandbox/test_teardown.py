"""Teardown that cannot be half-done: SIGKILL, SIGQUIT, a double Ctrl-C during an OOM kill.

Real hubprobe processes with real containers. After each, nothing of the
sandbox runs any more, and once the next run has cleaned up, the counts of
cgroups, mounts, loop devices, containers, records and work folders equal
those before.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import leftovers
import nbformat
import pytest

from hubprobe.sandbox import registry

PY = sys.executable
MARK = "87654321"


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "hubprobe", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def sleepers() -> list[int]:
    """The `sleep MARK` processes started inside a sandbox."""
    return leftovers.processes_running("sleep", MARK)


def records_of(pid: int) -> list[registry.Record]:
    found = []
    for path in (registry.state_dir() / "sandboxes").glob(f"hubprobe-{pid}-*.json"):
        record = registry.load(path)
        if record is not None:
            found.append(record)
    return found


def wait_for(condition: object, timeout: float = 60, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(every)


def small(tmp_path: Path) -> Path:
    from hubprobe.profiles import load_profile

    text = load_profile("curriculum-guide").path.read_text()
    text = text.replace('limit = "2G"', 'limit = "256M"').replace(
        'guarantee = "1G"', 'guarantee = "256M"'
    )
    text = text.replace('size = "10G"', 'size = "64M"').replace(
        'name = "curriculum-guide"', 'name = "small"'
    )
    path = tmp_path / "small.toml"
    path.write_text(text)
    return path


@pytest.mark.sandbox
@pytest.mark.parametrize("where", ["sandbox", "check"])
def test_sigkill_to_hubprobe_takes_the_container_with_it(where: str, tmp_path: Path) -> None:
    before = leftovers.count()
    if where == "sandbox":
        proc = start("sandbox", "--backend", "oci", "-q", "--", "sleep", MARK)
    else:
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell(f"import subprocess\nsubprocess.run(['sleep', '{MARK}'])")
        ]
        path = tmp_path / "long.ipynb"
        nbformat.write(nb, path)
        proc = start("check", str(path), "--backend", "oci")
    wait_for(sleepers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    killed = time.monotonic()
    wait_for(lambda: not sleepers() and not records_of(proc.pid), timeout=10)
    print(f"container gone {time.monotonic() - killed:.2f} s after SIGKILL")
    # The next run finds nothing more to remove, and the counts are as before.
    assert (
        subprocess.run(
            [PY, "-m", "hubprobe", "doctor"], capture_output=True, check=False
        ).returncode
        == 0
    )
    assert leftovers.count() == before


@pytest.mark.sandbox
def test_a_killed_watchdog_leaves_a_record_the_next_run_removes() -> None:
    before = leftovers.count()
    proc = start("sandbox", "--backend", "oci", "-q", "--", "sleep", MARK)
    wait_for(lambda: sleepers() and records_of(proc.pid))
    # Kill hubprobe's watchdog first (found as hubprobe's child in its own session), then hubprobe.
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    watchdogs = [
        int(c) for c in children
        if b"hubprobe.sandbox.watchdog" in Path(f"/proc/{c}/cmdline").read_bytes()
    ]  # fmt: skip
    assert len(watchdogs) == 1
    os.kill(watchdogs[0], signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()  # not communicate(): the orphaned container still holds hubprobe's stdout
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()
    assert records_of(proc.pid), "the record outlives a hubprobe killed with its watchdog"
    doctor = subprocess.run(
        [PY, "-m", "hubprobe", "doctor"], capture_output=True, text=True, check=False
    )
    assert f"removed what a killed hubprobe (pid {proc.pid}) left" in doctor.stderr
    assert "container" in doctor.stderr
    assert not sleepers()
    assert leftovers.count() == before


@pytest.mark.sandbox
@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM])
def test_quit_hangup_and_term_tear_down_like_ctrl_c(sig: signal.Signals) -> None:
    before = leftovers.count()
    proc = start("sandbox", "--backend", "oci", "-q", "--", "sleep", MARK)
    wait_for(sleepers)
    os.kill(proc.pid, sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert "torn down" in err
    assert not sleepers()
    assert leftovers.count() == before


@pytest.mark.sandbox
def test_double_ctrl_c_during_an_oom_teardown(tmp_path: Path) -> None:
    """20 times: an OOM kill, then two SIGINTs 1-10 ms apart; never anything left."""
    before = leftovers.count()
    profile = small(tmp_path)
    code = "b = bytearray(512 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    rng = random.Random(20261202)
    codes = []
    for _ in range(20):
        proc = start("sandbox", "--backend", "oci", "--profile", str(profile), "--", PY, "-c", code)
        # Right after the kill hubprobe tears down: that is when the signals come.
        wait_for(lambda p=proc: _oom_seen(p.pid) or p.poll() is not None, timeout=60, every=0.001)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
            time.sleep(rng.uniform(0.001, 0.010))
            os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        codes.append(proc.returncode)
        assert "Traceback" not in err, err
        assert not records_of(proc.pid)
        assert not sleepers()
    assert set(codes) <= {130, 137}, codes
    # The signals really came while hubprobe was still at work, most of the time.
    assert codes.count(130) >= 10, codes
    assert leftovers.count() == before


def _oom_seen(pid: int) -> bool:
    for record in records_of(pid):
        for group in record.cgroups:
            oom = Path(group) / "memory.oom_control"
            try:
                if "oom_kill 0" not in oom.read_text():
                    return True
            except OSError:
                continue
    return False


def test_records_are_json_with_what_teardown_removes(tmp_path: Path) -> None:
    record = registry.Record(
        id=f"hubprobe-{os.getpid()}-unit", backend="oci", workdir=str(tmp_path / "w")
    )
    (tmp_path / "w").mkdir()
    path = registry.save(record)
    try:
        data = json.loads(path.read_text())
        assert data["owner_pid"] == os.getpid()
        assert record.owner_alive()
        assert record not in registry.orphans()
        assert registry.remove(record) == [f"folder {tmp_path / 'w'}"]
        assert registry.remove(record) == [], "idempotent"
    finally:
        registry.forget(record)
    assert not path.exists()


def test_a_record_of_a_dead_owner_is_an_orphan(tmp_path: Path) -> None:
    gone = subprocess.run(
        [PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(gone.stdout)
    (tmp_path / "w").mkdir()
    record = registry.Record(
        id=f"hubprobe-{pid}-unit",
        backend="oci",
        owner_pid=pid,
        owner_start="1",
        workdir=str(tmp_path / "w"),
    )
    registry.save(record)
    lines = registry.reap_orphans()
    assert any(f"(pid {pid})" in line and "folder" in line for line in lines)
    assert not record.path.exists()
    assert not (tmp_path / "w").exists()


@pytest.mark.sandbox
def test_ctrl_c_tears_down_both_probes_running_at_once(tmp_path: Path) -> None:
    """The suite runs two probes in threads: one Ctrl-C ends both, mid-cell, leaving nothing."""
    before = leftovers.count()
    probes = tmp_path / "probes"
    probes.mkdir()
    claims = []
    for name in ("first", "second"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell(f"import subprocess\nsubprocess.run(['sleep', '{MARK}'])")
        ]
        nb.cells[0].source += f"\n# {name}"
        nbformat.write(nb, probes / f"{name}.ipynb")
        claims.append(
            f'[[claim]]\nid = "{name}"\nstatement = "s"\nprobe = "{name}"\nexpect = ["oom_kills == 0"]\n'
        )
    (probes / "claims.toml").write_text("\n".join(claims))
    proc = start("probes", "--probes-dir", str(probes), "--profile", str(small(tmp_path)))
    wait_for(lambda: len(sleepers()) == 2)
    os.kill(proc.pid, signal.SIGINT)
    stopped = time.monotonic()
    _out, err = proc.communicate(timeout=30)
    print(f"both torn down {time.monotonic() - stopped:.2f} s after Ctrl-C")
    assert proc.returncode == 130, err
    assert "tearing down 2 running probe(s)" in err
    assert not sleepers()
    assert not (probes / "results").exists(), "an interrupted probe records no result"
    assert leftovers.count() == before
