"""``hubprobe check --hub`` for real: the same verdicts and cell numbers as in the sandbox.

Also where the token may not go: into any process's command line, the hub's
log, the JSON report or the executed notebook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Self

import hubtools
import pytest
from hubtools import settle

from hubprobe.hub.api import HubClient
from hubprobe.hub.local import LocalHub
from hubprobe.profiles import Profile

NOTEBOOKS = Path(__file__).parents[1] / "check"


def check(*args: str, token_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTERHUB_API_TOKEN"}
    extra = ["--token-file", str(token_file)] if token_file else []
    return subprocess.run(
        [sys.executable, "-m", "hubprobe", "check", *args, *extra],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip


def verdicts(report: Path) -> list[tuple[str, str, int | None, list[tuple[int, str]]]]:
    data = json.loads(report.read_text())
    return [
        (Path(nb["path"]).name, nb["verdict"], nb["at_cell"],
         [(c["cell"], c["outcome"]) for c in nb["cells"]])
        for nb in data["notebooks"]
    ]  # fmt: skip


class ArgvWatch:
    """Reads every process's command line while a run goes on: the token must be in none."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.seen: list[str] = []
        self.scanned = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes()
                except OSError:
                    continue
                self.scanned += 1
                if self.token in text:
                    self.seen.append(text.decode(errors="replace"))
            self._stop.wait(0.2)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_check_through_the_hub_gives_the_sandbox_verdicts(
    local_hub: LocalHub, hub_profile: Profile, tmp_path: Path
) -> None:
    notebooks = [str(NOTEBOOKS / "killed.ipynb"), str(NOTEBOOKS / "fits.ipynb")]
    local = check(
        *notebooks, "--profile", str(hub_profile.path), "--json", str(tmp_path / "l.json")
    )
    assert local.returncode == 6, local.stderr  # killed, the worst of the two
    before = hubtools.count()
    with ArgvWatch(local_hub.token) as watch:
        on_hub = check(
            *notebooks, "--hub", local_hub.url, "--user", "student",
            "--json", str(tmp_path / "h.json"), token_file=local_hub.token_file,
        )  # fmt: skip
    assert on_hub.returncode == 6, on_hub.stderr
    hub_verdicts = verdicts(tmp_path / "h.json")
    assert hub_verdicts == verdicts(tmp_path / "l.json")
    assert [v[:3] for v in hub_verdicts] == [
        ("killed.ipynb", "killed", 5),
        ("fits.ipynb", "fits", None),
    ]
    # The token went nowhere it must not: no command line, log, report or notebook.
    assert watch.scanned > 100
    assert watch.seen == []
    token = local_hub.token
    for text in (on_hub.stdout, on_hub.stderr, (tmp_path / "h.json").read_text(),
                 local_hub.log_path.read_text()):  # fmt: skip
        assert token not in text
    for nb in NOTEBOOKS.glob("*.ipynb"):
        assert token not in nb.read_text()
    # The server it started is stopped again; the uploaded folder went with it.
    assert not HubClient(local_hub.url, local_hub.token).server_ready("student")
    assert settle(before) == {}


@pytest.mark.parametrize("leave_running", [True])
def test_a_running_server_is_reused_and_left_running(
    local_hub: LocalHub, tmp_path: Path, leave_running: bool
) -> None:
    client = HubClient(local_hub.url, local_hub.token)
    client.ensure_server("other")
    try:
        api = client.server_api("other")
        kernels_before = {k["id"] for k in api.kernels()}
        done = check(str(NOTEBOOKS / "fits.ipynb"), "--hub", local_hub.url, "--user", "other",
                     "--json", str(tmp_path / "r.json"), token_file=local_hub.token_file)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert client.server_ready("other") is leave_running
        # Its own kernels (the one under test and the helper) are gone, and its upload.
        assert {k["id"] for k in api.kernels()} == kernels_before
        listing = api.request("GET", "/api/contents/")
        assert [c["name"] for c in listing["content"] if c["name"].startswith("hubprobe-")] == []
    finally:
        client.stop_server("other")


def test_the_runner_reads_the_cgroup_with_no_process_of_its_own_in_the_session(
    local_hub: LocalHub, hub_profile: Profile, tmp_path: Path
) -> None:
    """The meter reads through the server: while a cell runs, its kernel is the only one."""
    import nbformat

    from hubprobe.hub.runner import run_on_hub
    from hubprobe.hub.session import HubServer

    idle = (
        "import os, time\n"
        "kernels = sum(b'ipykernel' in open(f'/proc/{p}/cmdline', 'rb').read()\n"
        "              for p in os.listdir('/proc') if p.isdigit())\n"
        "print('kernels', kernels)\n"
        "time.sleep(1.5)"
    )
    busy = (
        "block = bytearray(200 * 2**20); block[::4096] = b'x' * len(block[::4096])\n"
        "end = time.process_time() + 1.5\n"
        "while time.process_time() < end: pass\n"
        "time.sleep(1.5)"
    )
    path = tmp_path / "meter.ipynb"
    cells = [nbformat.v4.new_code_cell(idle), nbformat.v4.new_code_cell(busy)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    client = HubClient(local_hub.url, local_hub.token)
    api, _started = client.ensure_server("other")
    try:
        server = HubServer(client=client, user="other", api=api, started=True)
        run = run_on_hub(path, hub_profile, server=server)
        first, second = run.cells
        assert [first.outcome, second.outcome] == ["ok", "ok"], second.outputs
        assert "kernels 1" in "".join(o.get("text", "") for o in first.outputs)
        # Read from inside, the allocation and the CPU time show in their cell.
        assert second.peak_memory_bytes - first.peak_memory_bytes >= 190 * 2**20
        assert second.cpu_seconds >= 1.0 > first.cpu_seconds
        # Its folder, with the meter's links in it, is gone; so are its kernels.
        listing = api.request("GET", "/api/contents/")
        assert [c["name"] for c in listing["content"] if c["name"].startswith("hubprobe-")] == []
        assert api.kernels() == []
    finally:
        client.stop_server("other")
