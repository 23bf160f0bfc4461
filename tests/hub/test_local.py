"""The local hub for real: a server in the container with the profile's limits; Ctrl-C ends all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import hubtools
import pytest
from hubtools import settle

from hubprobe.hub.api import HubClient, HubError
from hubprobe.hub.local import LocalHub, free_port
from hubprobe.profiles import Profile

INSIDE = (
    "import json, os\n"
    "print(json.dumps({'uid': os.getuid(), 'home': os.environ['HOME'],"
    " 'mem': os.environ.get('MEM_LIMIT'), 'cpu': os.environ.get('CPU_LIMIT'),"
    " 'token_in_argv': [p for p in os.listdir('/proc') if p.isdigit()]}))\n"
)


def test_a_server_runs_in_a_container_with_the_profile(
    local_hub: LocalHub, hub_profile: Profile
) -> None:
    client = HubClient(local_hub.url, local_hub.token)
    api, started = client.ensure_server("other")
    assert started
    try:
        kernel = api.start_kernel()
        sock = api.connect(kernel)
        out = sock.execute(
            "import os; print(os.getuid(), os.environ['HOME'], os.environ['MEM_LIMIT'],"
            " os.environ['CPU_LIMIT'], open('/proc/1/cmdline').read().split(chr(0))[2],"
            " sum('hubprobe.hub' in open(f'/proc/{p}/cmdline').read()"
            "     for p in os.listdir('/proc') if p.isdigit()))"
        )
        sock.close()
        uid, home, mem, cpu, first, plumbing = out[0]["text"].split()
        assert (uid, home) == ("1000", "/home/jovyan")
        assert int(mem) == hub_profile.memory_limit_bytes
        assert float(cpu) == hub_profile.cpu_limit
        # pid 1 of its own pid namespace (a container) is the server, as in a pod: none of
        # hubprobe's plumbing runs in the container to take from its limits.
        assert first == "jupyterhub.singleuser"
        assert plumbing == "0"
        # The second call finds it running and reuses it.
        assert client.ensure_server("other")[1] is False
    finally:
        client.stop_server("other")
    assert not client.server_ready("other")


def test_ctrl_c_stops_every_server_and_the_proxy(
    hub_ready: None,  # noqa: ARG001  # skips where no hub can run
    hub_profile: Profile,
    tmp_path: Path,
) -> None:
    before = hubtools.count()
    port = free_port()
    token_file = tmp_path / "token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubprobe", "hub", "--profile", str(hub_profile.path),
         "--port", str(port), "--token-file", str(token_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        client = HubClient(f"http://127.0.0.1:{port}", token)
        while time.monotonic() < deadline:
            try:
                client.info()
                break
            except HubError:
                time.sleep(0.2)
        client.ensure_server("student")
        running = hubtools.count()
        assert len(running.processes) > len(before.processes)  # hub, proxy, runc, watchdog
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"http://127.0.0.1:{port}" in out
    assert str(token_file) in out
    assert token not in out + err
    assert not token_file.exists()  # the token died with the hub; so does its file
    assert settle(before) == {}


@pytest.mark.parametrize("missing", ["configurable-http-proxy"])
def test_no_proxy_is_one_line_and_nothing_runs(
    hub_profile: Profile, missing: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing found there
    before = hubtools.count()
    done = subprocess.run(
        [sys.executable, "-m", "hubprobe", "hub", "--profile", str(hub_profile.path),
         "--backend", "oci"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 8, done.stderr
    assert missing in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert settle(before) == {}


def test_a_server_that_will_not_start_is_one_line(
    hub_ready: None,  # noqa: ARG001  # skips where no hub can run
    hub_profile: Profile,
) -> None:
    before = hubtools.count()
    # A spawner that cannot make its sandbox (no such backend): the hub's spawn fails.
    with LocalHub(hub_profile, backend="no-such-backend") as hub:
        env = {k: v for k, v in os.environ.items() if k != "JUPYTERHUB_API_TOKEN"}
        done = subprocess.run(
            [sys.executable, "-m", "hubprobe", "profile", "--hub", hub.url, "--user", "student",
             "--token-file", str(hub.token_file)],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
    assert done.returncode == 10, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "would not start" in lines[-1], done.stderr
    assert len([line for line in lines if "would not start" in line]) == 1
    assert settle(before) == {}
