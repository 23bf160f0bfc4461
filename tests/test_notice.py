"""The out-of-memory notice: cgroup fixture trees, the state file, thresholds, texts,
configuration, and the extension in a real IPython shell (no kernel, no sandbox)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets import TraitError
from traitlets.config import Config

from hubprobe import notice
from hubprobe.address import DEFAULT_SITE_URL
from hubprobe.notice import (
    DEFAULT_GUIDE_URL,
    NOTICE_METADATA,
    MemoryFiles,
    NearLimit,
    OOMNotice,
    claim_kills,
    find_memory_files,
    format_state,
    parse_state,
    restart_notice,
    update_state,
)

GiB = 2**30


# -- fixture trees: a fake /proc pointing at fake cgroup files --------------------


def v1_tree(tmp_path: Path, *, kills: int = 0, usage: int = GiB, limit: int = 2 * GiB) -> Path:
    """A v1 session as the sandbox shows it: own cgroup namespace, group at the mount."""
    mem = tmp_path / "cg" / "memory"
    mem.mkdir(parents=True)
    (mem / "memory.oom_control").write_text(f"oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n")
    (mem / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (mem / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (mem / "memory.stat").write_text("cache 0\nrss 1\ntotal_inactive_file 0\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("5:memory:/\n0::/\n")
    (proc / "self" / "mounts").write_text(
        f"cgroup {mem} cgroup rw,nosuid,memory 0 0\n"
        f"cgroup2 {tmp_path}/cg/unified cgroup2 rw,relatime 0 0\n"
    )
    return proc


def v2_tree(tmp_path: Path, *, kills: int = 0, limit: str = "2147483648") -> Path:
    group = tmp_path / "cg2" / "user.slice" / "session"
    group.mkdir(parents=True)
    (group / "memory.events").write_text(f"low 0\nhigh 0\nmax 4\noom 1\noom_kill {kills}\n")
    (group / "memory.current").write_text(f"{GiB}\n")
    (group / "memory.max").write_text(f"{limit}\n")
    (group / "memory.stat").write_text("anon 1\nfile 2\ninactive_file 0\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("0::/user.slice/session\n")
    (proc / "self" / "mounts").write_text(f"cgroup2 {tmp_path}/cg2 cgroup2 rw 0 0\n")
    return proc


def v1_files(proc: Path) -> Path:
    return proc.parent / "cg" / "memory"


# -- finding and reading the files ---------------------------------------------------


def test_v1_namespaced_session(tmp_path: Path) -> None:
    proc = v1_tree(tmp_path, kills=2)
    files = find_memory_files(proc)
    assert files is not None
    assert (files.kills(), files.usage(), files.limit_bytes) == (2, GiB, 2 * GiB)
    (v1_files(proc) / "memory.oom_control").write_text("oom_kill 3\n")
    assert files.kills() == 3, "read again from the open file, not remembered"


def test_v1_container_without_cgroup_namespace(tmp_path: Path) -> None:
    """/proc/self/cgroup names the host's path; the group itself is at the mount point."""
    proc = v1_tree(tmp_path, kills=1)
    (proc / "self" / "cgroup").write_text("5:memory:/kubepods/pod1/abc\n")
    files = find_memory_files(proc)
    assert files is not None
    assert files.kills() == 1


def test_v2_session_and_no_limit(tmp_path: Path) -> None:
    files = find_memory_files(v2_tree(tmp_path, kills=3, limit="max"))
    assert files is not None
    assert (files.kills(), files.usage(), files.limit_bytes) == (3, GiB, None)


def test_v1_unlimited_reads_as_no_limit(tmp_path: Path) -> None:
    files = find_memory_files(v1_tree(tmp_path, limit=9223372036854771712))
    assert files is not None
    assert files.limit_bytes is None


def test_no_cgroup_means_nothing_to_read(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("")
    (proc / "self" / "mounts").write_text("proc /proc proc rw 0 0\n")
    assert find_memory_files(proc) is None


def test_old_kernel_without_oom_kill_line_is_refused(tmp_path: Path) -> None:
    proc = v1_tree(tmp_path)
    (v1_files(proc) / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    with pytest.raises(KeyError, match="oom_kill"):
        find_memory_files(proc)


def test_working_set_leaves_out_inactive_page_cache(tmp_path: Path) -> None:
    proc = v1_tree(tmp_path)
    (v1_files(proc) / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {GiB // 4}\n")
    files = MemoryFiles(v1_files(proc), 1)
    assert files.working_set(GiB) == GiB - GiB // 4
    files.close()


# -- the state file -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[1, 2]", '{"kernels": [1]}', '{"format": 1}', "\x00\x01"],
)
def test_bad_state_reads_as_empty(text: str) -> None:
    assert parse_state(text) == {}


def test_state_keeps_only_sane_counters() -> None:
    text = '{"kernels": {"a": 1, "b": -1, "c": "2", "d": true, "e": 0}}'
    assert parse_state(text) == {"a": 1, "e": 0}


def test_state_round_trip_keeps_the_most_recent_kernels() -> None:
    kernels = {f"k{i}": i for i in range(notice.MAX_KERNELS + 10)}
    back = parse_state(format_state(kernels))
    assert len(back) == notice.MAX_KERNELS
    assert "k0" not in back
    assert back[f"k{notice.MAX_KERNELS + 9}"] == notice.MAX_KERNELS + 9


def test_claims() -> None:
    kernels: dict[str, int] = {}
    assert claim_kills(kernels, "new", 3) == 0, "a new kernel claims nothing"
    assert kernels == {"new": 3}
    assert claim_kills(kernels, "new", 3) == 0, "restarted without a kill"
    assert claim_kills(kernels, "new", 5) == 2, "restarted after two kills"
    assert claim_kills(kernels, "new", 1) == 0, "a counter that went down is a new cgroup"
    assert kernels == {"new": 1}


def test_claiming_moves_a_kernel_to_most_recent() -> None:
    kernels = {"a": 0, "b": 0}
    claim_kills(kernels, "a", 0)
    assert list(kernels) == ["b", "a"]


def test_update_state_creates_a_private_file_and_survives_garbage(tmp_path: Path) -> None:
    path = tmp_path / "runtime" / notice.STATE_FILE
    assert update_state(path, lambda k: claim_kills(k, "a", 1)) == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    path.write_bytes(b"\xff\xfe garbage")
    assert update_state(path, lambda k: claim_kills(k, "a", 2)) == 0, "a bad file: start afresh"
    assert parse_state(path.read_text()) == {"a": 2}


def test_update_state_gives_up_on_a_held_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    monkeypatch.setattr(notice, "LOCK_SECONDS", 0.05)
    path = tmp_path / notice.STATE_FILE
    path.write_text("")
    with path.open() as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BlockingIOError):
            update_state(path, lambda k: claim_kills(k, "a", 1))


def _claim_in_child(path: str, kernel_id: str) -> None:
    update_state(Path(path), lambda k: claim_kills(k, kernel_id, 1))


def test_kernels_starting_together_lose_no_entry(tmp_path: Path) -> None:
    """Many kernels of one server write at once: the lock keeps every entry."""
    path = tmp_path / notice.STATE_FILE
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_claim_in_child, args=(str(path), f"k{i}")) for i in range(12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert sorted(parse_state(path.read_text())) == sorted(f"k{i}" for i in range(12))


# -- near the limit ---------------------------------------------------------------


def test_near_limit_warns_once_per_crossing() -> None:
    near = NearLimit(0.9, 1000)
    said = [near.crossed(used) for used in (100, 899, 900, 950, 990)]
    assert said == [False, False, True, False, False]
    assert near.crossed(500) is False
    assert near.crossed(960) is True, "a new crossing after going below"


# -- what the notices say -----------------------------------------------------------


def test_restart_notice_says_limit_loss_and_where_to_read() -> None:
    data, meta = restart_notice(2 * GiB, DEFAULT_GUIDE_URL)
    text, markup = data["text/plain"], data["text/html"]
    for part in ("ran out of memory", "2 GiB", "gone", "variables", DEFAULT_GUIDE_URL):
        assert part in text
        assert part in markup
    assert f'<a href="{DEFAULT_GUIDE_URL}"' in markup
    assert max(len(line) for line in text.splitlines()) <= 78
    assert meta == {NOTICE_METADATA: {"kind": "restart", "limit_bytes": 2 * GiB}}


def test_default_guide_url_is_the_published_page() -> None:
    assert DEFAULT_GUIDE_URL == DEFAULT_SITE_URL + "explanation/silent-oom-kill/"


def test_relative_guide_url_is_text_not_a_link() -> None:
    data, _ = restart_notice(2 * GiB, "explanation/silent-oom-kill/")
    assert "explanation/silent-oom-kill/" in data["text/html"]
    assert "<a " not in data["text/html"], "a relative URL would open as a file in the notebook"


def test_absolute_guide_url_is_a_link_and_escaped() -> None:
    data, _ = restart_notice(None, 'https://guide.example.org/oom/?a="b"')
    assert '<a href="https://guide.example.org/oom/?a=&quot;b&quot;"' in data["text/html"]
    assert "more memory than the session has" in " ".join(data["text/plain"].split())


def test_others_and_near_limit_texts() -> None:
    one, _ = notice.others_notice(1, GiB, DEFAULT_GUIDE_URL)
    assert "1 other process of your session was stopped" in " ".join(one["text/plain"].split())
    two, meta = notice.others_notice(2, GiB, DEFAULT_GUIDE_URL)
    assert "2 other processes" in two["text/plain"]
    assert meta[NOTICE_METADATA]["kills"] == 2
    near, _ = notice.near_limit_notice(int(0.95 * GiB), GiB, DEFAULT_GUIDE_URL)
    assert "95% used" in near["text/plain"]


# -- configuration ------------------------------------------------------------------


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (notice.ENV_ENABLED, notice.ENV_THRESHOLD, notice.ENV_GUIDE_URL):
        monkeypatch.delenv(name, raising=False)
    plain = OOMNotice()
    assert (plain.enabled, plain.threshold, plain.guide_url) == (True, 0.9, DEFAULT_GUIDE_URL)
    monkeypatch.setenv(notice.ENV_ENABLED, "off")
    monkeypatch.setenv(notice.ENV_THRESHOLD, "0.8")
    monkeypatch.setenv(notice.ENV_GUIDE_URL, "https://hub.example.org/guide/oom/")
    env = OOMNotice()
    assert (env.enabled, env.threshold, env.guide_url) == (
        False,
        0.8,
        "https://hub.example.org/guide/oom/",
    )
    monkeypatch.setenv(notice.ENV_THRESHOLD, "90%")
    assert OOMNotice().threshold == 0.9, "a bad value falls back to the default"


def test_config_file_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notice.ENV_THRESHOLD, "0.8")
    config = Config()
    config.OOMNotice.threshold = 0.5
    config.OOMNotice.enabled = True
    assert OOMNotice(config=config).threshold == 0.5
    config.OOMNotice.threshold = 1.5
    with pytest.raises(TraitError, match="between 0 and 1"):
        OOMNotice(config=config)


# -- the extension in a real IPython shell -----------------------------------------


@pytest.fixture
def shell(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    if not InteractiveShell.initialized():
        # The shell makes its profile dir at start: not in the real home.
        monkeypatch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        config = Config()
        config.HistoryManager.enabled = False
        InteractiveShell.instance(config=config)
    ip = InteractiveShell.instance()
    yield ip
    if notice._active is not None:
        notice.unload_ipython_extension(ip)


def started(
    shell: InteractiveShell, proc: Path, state: Path | None, kernel_id: str | None = "k1"
) -> OOMNotice:
    n = OOMNotice(parent=shell)
    assert n.quietly(lambda: n.start(shell, kernel_id, state, proc))
    notice._active = n  # unloaded by the fixture
    return n


def run(shell: InteractiveShell, code: str = "x = 1", **kwargs: Any) -> list[str]:
    """Run a cell; the kinds of notices it showed, and 'own' for the cell's own display."""
    with capture_output() as cap:
        shell.run_cell(code, store_history=kwargs.get("store_history", True), **kwargs)
    return [o.metadata.get(NOTICE_METADATA, {}).get("kind", "own") for o in cap.outputs]


OWN = "from IPython.display import display; display({'text/plain': 'mine'}, raw=True)"


def test_restarted_kernel_shows_the_notice_once_above_its_output(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    proc = v1_tree(tmp_path, kills=1)
    state = tmp_path / "runtime" / notice.STATE_FILE
    update_state(state, lambda k: claim_kills(k, "k1", 0))  # the killed predecessor
    started(shell, proc, state)
    assert run(shell, "pass", silent=True) == [], "hidden executions leave it pending"
    assert run(shell, OWN) == ["restart", "own"]
    assert run(shell, OWN) == ["own"]
    assert parse_state(state.read_text()) == {"k1": 1}


def test_a_new_kernel_claims_no_earlier_kill(shell: InteractiveShell, tmp_path: Path) -> None:
    state = tmp_path / notice.STATE_FILE
    update_state(state, lambda k: claim_kills(k, "other", 0))
    started(shell, v1_tree(tmp_path, kills=4), state, kernel_id="new")
    assert run(shell) == []


def test_kills_of_other_processes_are_reported_once(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    proc = v2_tree(tmp_path)
    state = tmp_path / notice.STATE_FILE
    started(shell, proc, state)
    events = tmp_path / "cg2" / "user.slice" / "session" / "memory.events"
    events.write_text("oom 2\noom_kill 2\n")
    assert run(shell) == ["others"]
    assert run(shell) == []
    assert parse_state(state.read_text()) == {"k1": 2}, "seen: a later restart claims nothing"


def test_near_limit_warning_per_crossing(shell: InteractiveShell, tmp_path: Path) -> None:
    proc = v1_tree(tmp_path, usage=GiB)
    usage = v1_files(proc) / "memory.usage_in_bytes"
    started(shell, proc, None)
    assert run(shell) == []
    usage.write_text(f"{int(1.9 * GiB)}\n")
    assert run(shell) == ["near-limit"]
    assert run(shell) == [], "still above: said already"
    usage.write_text(f"{GiB}\n")
    assert run(shell) == []
    usage.write_text(f"{int(1.9 * GiB)}\n")
    assert run(shell) == ["near-limit"]


def test_page_cache_alone_does_not_warn(shell: InteractiveShell, tmp_path: Path) -> None:
    proc = v1_tree(tmp_path, usage=int(1.9 * GiB))
    (v1_files(proc) / "memory.stat").write_text(f"total_inactive_file {GiB}\n")
    started(shell, proc, None)
    assert run(shell) == []


def test_threshold_zero_never_warns(shell: InteractiveShell, tmp_path: Path) -> None:
    config = Config()
    config.OOMNotice.threshold = 0.0
    shell.config.merge(config)
    try:
        started(shell, v1_tree(tmp_path, usage=2 * GiB), None)
        assert run(shell) == []
    finally:
        del shell.config.OOMNotice


def test_silent_without_cgroup_or_when_off(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = tmp_path / "bare" / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("")
    (proc / "self" / "mounts").write_text("")
    n = OOMNotice(parent=shell)
    assert n.start(shell, "k1", tmp_path / "state.json", proc) is False
    monkeypatch.setenv(notice.ENV_ENABLED, "0")
    off = OOMNotice(parent=shell)
    assert off.start(shell, "k1", tmp_path / "state.json", v1_tree(tmp_path)) is False
    assert not (tmp_path / "state.json").exists()
    assert run(shell) == []


def test_vanishing_files_and_a_bad_state_file_stay_silent(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    proc = v1_tree(tmp_path, kills=1)
    state = tmp_path / notice.STATE_FILE
    state.write_text('{"kernels": {"k1": "zero"}}')
    started(shell, proc, state)
    assert run(shell) == [], "a bad state file: no claim"
    for f in v1_files(proc).iterdir():
        f.write_text("garbage\n")  # the files stay open: what a broken cgroup would read
    assert run(shell, "y = 2") == []
    assert shell.user_ns["y"] == 2


def test_a_clean_exit_forgets_the_kernel(shell: InteractiveShell, tmp_path: Path) -> None:
    """Restart by hand or shut down: the next kernel with this id claims nothing."""
    state = tmp_path / notice.STATE_FILE
    n = started(shell, v1_tree(tmp_path), state)
    update_state(state, lambda k: claim_kills(k, "k2", 0))
    n.forget()
    assert parse_state(state.read_text()) == {"k2": 0}


def test_load_and_unload_through_ipython(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = v1_tree(tmp_path)
    monkeypatch.setattr(notice, "PROC", proc)
    monkeypatch.setattr(notice, "_state_path", lambda: tmp_path / notice.STATE_FILE)
    monkeypatch.setattr(notice, "_kernel_id", lambda: "k9")
    before = len(shell.events.callbacks["post_run_cell"])
    shell.run_line_magic("load_ext", "hubprobe.notice")
    assert notice._active is not None
    assert len(shell.events.callbacks["post_run_cell"]) == before + 1
    assert parse_state((tmp_path / notice.STATE_FILE).read_text()) == {"k9": 0}
    shell.run_line_magic("unload_ext", "hubprobe.notice")
    assert notice._active is None
    assert len(shell.events.callbacks["post_run_cell"]) == before
    assert parse_state((tmp_path / notice.STATE_FILE).read_text()) == {}


def test_a_bad_config_value_does_not_break_loading(shell: InteractiveShell) -> None:
    config = Config()
    config.OOMNotice.threshold = 2.0
    shell.config.merge(config)
    try:
        notice.load_ipython_extension(shell)
        assert notice._active is None
    finally:
        del shell.config.OOMNotice


def test_not_in_a_kernel_there_is_no_kernel_id() -> None:
    assert notice._kernel_id() is None


def test_the_guide_states_the_default_guide_url() -> None:
    page = Path(__file__).resolve().parents[1] / "docs/how-to/tell-students-why-kernel-died.md"
    assert f"| `{DEFAULT_GUIDE_URL}` |" in page.read_text()
