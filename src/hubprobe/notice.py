"""An IPython extension that tells a student why their kernel died.

A hub admin enables it for every kernel with one line in the image's IPython
config, ``c.InteractiveShellApp.extensions = ["hubprobe.notice"]`` (or by hand:
``%load_ext hubprobe.notice``). It reads the session's out-of-memory kill
counter (cgroup v1 ``memory.oom_control``, v2 ``memory.events``) and says
what Jupyter never says:

- ``restart``: in the first cell after an out-of-memory restart, above the
  cell's own output: the session ran out of memory, the limit, earlier
  variables are gone, and a link to the guide.
- ``others``: after a cell, once, when other processes of the session were
  killed meanwhile (a joblib worker, another notebook's kernel).
- ``near-limit``: after a cell, once per crossing, above ``threshold`` of the limit.

Whose kill it is: the counter counts every process of the session. Each kernel
records the counter it saw under its kernel id, which the server keeps across
restarts, in a state file in the Jupyter runtime dir. Only a kernel whose id
is there already (its predecessor did not exit cleanly: a clean exit, as a
restart by hand, removes the entry) and for which the counter rose claims a
kill. A kernel that merely starts later claims nothing.

It never breaks a kernel: no cgroup, unreadable files or a bad state file
leave it silent (debug log only). Per cell it reads two small files.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import html
import json
import os
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from traitlets import Bool, Float, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable
from traitlets.log import get_logger

from hubprobe.address import page_url
from hubprobe.cgroup import fs
from hubprobe.cgroup.locate import NoCgroup, own_groups
from hubprobe.units import format_bytes

__all__ = [
    "DEFAULT_GUIDE_URL",
    "ENV_ENABLED",
    "ENV_GUIDE_URL",
    "ENV_THRESHOLD",
    "NOTICE_METADATA",
    "OOMNotice",
    "load_ipython_extension",
    "unload_ipython_extension",
]

#: The guide's page on OOM kills at its published address (hubprobe.address);
#: a hub with its own copy of the guide sets ``guide_url``. A relative URL is
#: shown as text, never as a link a notebook would resolve as a file.
DEFAULT_GUIDE_URL = page_url("explanation/silent-oom-kill/")
ENV_ENABLED = "HUBPROBE_NOTICE"  # "0", "off", "false" or "no" turns it off
ENV_THRESHOLD = "HUBPROBE_NOTICE_THRESHOLD"
ENV_GUIDE_URL = "HUBPROBE_NOTICE_GUIDE_URL"
STATE_FILE = "hubprobe-oom-notice.json"
#: Output metadata key naming the notice kind, so tests and probes find it.
NOTICE_METADATA = "hubprobe.notice"
#: Kernel entries kept in the state file (most recent first to survive).
MAX_KERNELS = 64
LOCK_SECONDS = 1.0
PROC = Path("/proc")

T = TypeVar("T")
#: A display bundle and its metadata.
Notice = tuple[dict[str, str], dict[str, Any]]


# -- the session's memory cgroup ------------------------------------------------


def _value(text: bytes, key: bytes, where: object) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(b" ")
        if name == key:
            return int(value)
    raise KeyError(f"{where} has no {key.decode()} line")


class MemoryFiles:
    """The cgroup files the notice reads, opened once when the kernel starts.

    Per cell they are read again with ``pread`` at offset 0 (cgroup files are
    regenerated on each read): about ten times cheaper than open, read, close.
    """

    def __init__(self, group: Path, version: int) -> None:
        self.group = group
        if version == 1:
            kills, usage = group / "memory.oom_control", group / "memory.usage_in_bytes"
            self._inactive = b"total_inactive_file"  # hierarchical: the whole session
            limit = fs.read_int(group / "memory.limit_in_bytes")
        else:
            kills, usage = group / "memory.events", group / "memory.current"
            self._inactive = b"inactive_file"
            text = (group / "memory.max").read_text().strip()
            limit = fs.UNLIMITED if text == "max" else int(text)
        self.limit_bytes = None if limit >= fs.UNLIMITED else limit
        self._kills_fd = os.open(kills, os.O_RDONLY)
        self._usage_fd = os.open(usage, os.O_RDONLY)

    def kills(self) -> int:
        return _value(os.pread(self._kills_fd, 4096, 0), b"oom_kill", self.group)

    def usage(self) -> int:
        return int(os.pread(self._usage_fd, 64, 0))

    def working_set(self, usage: int) -> int:
        """Usage without the page cache the kernel would drop first (as kubelet counts)."""
        stat = (self.group / "memory.stat").read_bytes()
        return max(0, usage - _value(stat, self._inactive, self.group))

    def close(self) -> None:
        for fd in (self._kills_fd, self._usage_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def find_memory_files(proc: Path = PROC) -> MemoryFiles | None:
    """This process's memory cgroup, or None where there is none to read."""
    try:
        groups = own_groups(proc)
    except NoCgroup:
        return None
    kills = "memory.oom_control" if groups.version == 1 else "memory.events"
    if not (groups.memory / kills).is_file():
        return None
    files = MemoryFiles(groups.memory, groups.version)
    try:
        files.kills()  # no oom_kill line (Linux < 4.13): nothing to go by
    except (OSError, ValueError, KeyError):
        files.close()
        raise
    return files


# -- the state file: the counter each kernel last saw ---------------------------


def parse_state(text: str) -> dict[str, int]:
    """kernel id -> kill counter it last saw; {} for an empty or bad file (start afresh)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    kernels = data.get("kernels") if isinstance(data, dict) else None
    if not isinstance(kernels, dict):
        return {}
    return {
        str(k): v
        for k, v in kernels.items()
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0
    }


def format_state(kernels: Mapping[str, int]) -> str:
    recent = list(kernels.items())[-MAX_KERNELS:]
    return json.dumps({"format": 1, "kernels": dict(recent)}, indent=1) + "\n"


def claim_kills(kernels: dict[str, int], kernel_id: str, kills: int) -> int:
    """Record that ``kernel_id`` starts with ``kills``; return the kills it should claim.

    Non-zero only for a restarted kernel (its id is known) when the counter rose
    since its predecessor last looked: that predecessor was killed for memory.
    """
    previous = kernels.pop(kernel_id, None)  # re-inserted last: the most recent
    kernels[kernel_id] = kills
    return kills - previous if previous is not None and kills > previous else 0


def update_state(path: Path, change: Callable[[dict[str, int]], T]) -> T:
    """Read, change and write the state under an exclusive lock (kernels of one
    server race here); a bad file starts afresh."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8") as f:
        deadline = time.monotonic() + LOCK_SECONDS
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        try:
            kernels = parse_state(f.read())
        except UnicodeDecodeError:
            kernels = {}
        result = change(kernels)
        f.seek(0)
        f.truncate()
        f.write(format_state(kernels))
    return result  # closing the file released the lock


# -- what to say ----------------------------------------------------------------

_STYLE = "border-left:4px solid {color};padding:0.3em 0.8em;margin:0.2em 0;background:{bg}"
_RED, _AMBER = ("#c62828", "rgba(198,40,40,0.08)"), ("#ef6c00", "rgba(239,108,0,0.08)")


def _limit_text(limit: int | None) -> str:
    return f"the session's limit of {format_bytes(limit)}" if limit else "the session has"


def _bundle(
    kind: str, title: str, paragraphs: list[str], url: str, colors: tuple[str, str], **meta: Any
) -> Notice:
    """A display bundle: wrapped plain text (nbconvert, terminals) and HTML."""
    more = f"Why this happens and what to do: {url}"
    if len(more) > 78:  # a full address on a line of its own, never broken
        more = f"Why this happens and what to do:\n{url}"
    text = [title, *(textwrap.fill(p, 78) for p in paragraphs), more]
    link = html.escape(url)
    if url.startswith(("http://", "https://")):
        link = f'<a href="{link}" target="_blank" rel="noopener">{link}</a>'
    body = "".join(f'<p style="margin:0.3em 0">{html.escape(p)}</p>' for p in paragraphs)
    style = _STYLE.format(color=colors[0], bg=colors[1])
    markup = (
        f'<div style="{style}"><strong>&#9888; {html.escape(title)}</strong>{body}'
        f'<p style="margin:0.3em 0">Why this happens and what to do: {link}</p></div>'
    )
    return {"text/plain": "\n\n".join(text), "text/html": markup}, {
        NOTICE_METADATA: {"kind": kind, **meta}
    }


def restart_notice(limit: int | None, url: str) -> Notice:
    """Shown in the first cell after this notebook's kernel was killed for memory."""
    lost = (
        "The previous kernel of this notebook was stopped because the notebooks and programs "
        f"running in your session together needed more memory than {_limit_text(limit)}. "
        "Everything from before the restart is gone: variables, imports and loaded data."
    )
    todo = (
        "Run the notebook again from the top (Run > Run All Cells). If it stops at the "
        "same cell again, that cell needs less memory; shutting down the kernels of "
        "notebooks you are not using frees memory too."
    )
    title = "Your kernel was restarted: this session ran out of memory."
    return _bundle("restart", title, [lost, todo], url, _RED, limit_bytes=limit)


def others_notice(kills: int, limit: int | None, url: str) -> Notice:
    """Shown after a cell when other processes of the session were killed meanwhile."""
    what = "1 other process" if kills == 1 else f"{kills} other processes"
    said = (
        f"While this cell ran, or since the cell before it, {what} of your session "
        f"{'was' if kills == 1 else 'were'} stopped for needing more memory than "
        f"{_limit_text(limit)}: another notebook's kernel, or a worker process (joblib, "
        "scikit-learn's n_jobs, multiprocessing). This notebook's kernel is still running "
        "and keeps its variables; whatever the stopped processes held is gone."
    )
    title = f"Memory ran out in this session: {what} stopped."
    return _bundle("others", title, [said], url, _AMBER, kills=kills, limit_bytes=limit)


def near_limit_notice(used: int, limit: int, url: str) -> Notice:
    """Shown once each time the session goes above the threshold."""
    said = (
        f"Your notebooks and programs use {format_bytes(used)} of {_limit_text(limit)}. "
        "Past the limit a kernel is stopped and its variables are lost. To free memory, "
        "delete large variables you no longer need (del name), or shut down the kernels "
        "of notebooks you are not using."
    )
    title = f"This session is close to its memory limit: {used / limit:.0%} used."
    return _bundle("near-limit", title, [said], url, _AMBER, used_bytes=used, limit_bytes=limit)


class NearLimit:
    """Says "warn" once each time usage goes from below the threshold to above it."""

    def __init__(self, threshold: float, limit: int) -> None:
        self.at = int(threshold * limit)
        self.armed = True

    def crossed(self, used: int) -> bool:
        if used < self.at:
            self.armed = True
            return False
        fire, self.armed = self.armed, False
        return fire


# -- the extension ----------------------------------------------------------------


class OOMNotice(LoggingConfigurable):
    """Out-of-memory notices in the notebook; configured as ``c.OOMNotice.<name>``.

    A value in a config file wins over the environment variable, which wins
    over the built-in default.
    """

    enabled = Bool(help=f"Show notices at all (${ENV_ENABLED}=off: no).").tag(config=True)
    threshold = Float(
        help=f"Share of the memory limit above which to warn, once per crossing; 0: never "
        f"(${ENV_THRESHOLD}, else 0.9)."
    ).tag(config=True)
    guide_url = Unicode(
        help=f"The page the notices point to (${ENV_GUIDE_URL}, else {DEFAULT_GUIDE_URL!r})."
    ).tag(config=True)

    @default("enabled")
    def _enabled_default(self) -> bool:
        return os.environ.get(ENV_ENABLED, "").strip().lower() not in ("0", "off", "false", "no")

    @default("threshold")
    def _threshold_default(self) -> float:
        raw = os.environ.get(ENV_THRESHOLD, "")
        with contextlib.suppress(ValueError):
            if raw and 0 <= float(raw) <= 1:
                return float(raw)
        if raw:
            self.log.debug("hubprobe.notice: ignoring %s=%r", ENV_THRESHOLD, raw)
        return 0.9

    @validate("threshold")
    def _check_threshold(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not 0 <= value <= 1:
            raise TraitError(f"OOMNotice.threshold must be between 0 and 1, not {value}")
        return value

    @default("guide_url")
    def _guide_url_default(self) -> str:
        return os.environ.get(ENV_GUIDE_URL) or DEFAULT_GUIDE_URL

    # -- lifecycle ------------------------------------------------------------------
    def start(
        self, shell: Any, kernel_id: str | None, state_path: Path | None, proc: Path | None = None
    ) -> bool:
        """Read the counter, claim a kill if ours, hook into cells; False when silent."""
        self.shell = shell
        self.kernel_id, self.state_path = kernel_id, state_path
        self.pending: Notice | None = None
        files = find_memory_files(proc or PROC) if self.enabled else None
        if files is None:
            self.log.debug("hubprobe.notice: off or no memory cgroup; staying silent")
            return False
        self.files, self.seen = files, files.kills()
        limit = files.limit_bytes
        self.near = NearLimit(self.threshold, limit) if limit and self.threshold else None
        if kernel_id is not None and state_path is not None:
            missed = self.quietly(
                lambda: update_state(state_path, lambda k: claim_kills(k, kernel_id, self.seen))
            )
            if missed:
                self.pending = restart_notice(limit, self.guide_url)
            atexit.register(self.forget)
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)
        return True

    def stop(self) -> None:
        for event in ("pre_run_cell", "post_run_cell"):
            with contextlib.suppress(ValueError):
                self.shell.events.unregister(event, getattr(self, event))
        atexit.unregister(self.forget)
        self.forget()  # loaded again later, it starts as a new kernel would
        self.files.close()

    def forget(self) -> None:
        """At a clean exit (shutdown, restart by hand): the next kernel claims nothing."""
        if self.kernel_id is not None and self.state_path is not None:
            kid, path = self.kernel_id, self.state_path
            self.quietly(lambda: update_state(path, lambda k: k.pop(kid, None)))

    # -- per cell: cheap, and never raises ------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        if self.pending is not None and getattr(info, "store_history", True):
            notice, self.pending = self.pending, None
            self.quietly(lambda: self._show(notice))

    def post_run_cell(self, result: Any) -> None:
        info = getattr(result, "info", None)
        if getattr(info, "store_history", True):
            self.quietly(self._check)

    def _check(self) -> None:
        files = self.files
        kills = files.kills()
        if kills > self.seen:
            self._show(others_notice(kills - self.seen, files.limit_bytes, self.guide_url))
            self.seen = kills
            kid, path = self.kernel_id, self.state_path
            if kid is not None and path is not None:  # accounted for: not ours to claim later
                update_state(path, lambda k: claim_kills(k, kid, kills))
        elif kills < self.seen:  # a new cgroup under us: start over from it
            self.seen = kills
        if self.near is not None and files.limit_bytes:
            usage = files.usage()
            # memory.stat only when raw usage is high: the common cell reads two files.
            used = files.working_set(usage) if usage >= self.near.at else usage
            if self.near.crossed(used):
                self._show(near_limit_notice(used, files.limit_bytes, self.guide_url))

    def _show(self, notice: Notice) -> None:
        from IPython.display import display

        data, metadata = notice
        display(data, raw=True, metadata=metadata)

    def quietly(self, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except Exception:  # never break a kernel: say it only in the debug log
            self.log.debug("hubprobe.notice: skipped", exc_info=True)
            return None


def _kernel_id() -> str | None:
    """The server's id for this kernel (kept across restarts), from the connection file."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return None
    if not IPKernelApp.initialized():
        return None  # a terminal IPython: no restarts to explain
    name = Path(IPKernelApp.instance().connection_file).name
    if not (name.startswith("kernel-") and name.endswith(".json")):
        return None
    return name[len("kernel-") : -len(".json")]


def _state_path() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / STATE_FILE


_active: OOMNotice | None = None


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hubprobe.notice`` or ``c.InteractiveShellApp.extensions``."""
    global _active  # noqa: PLW0603 - one notice per shell, as IPython loads an extension once
    try:
        notice = OOMNotice(parent=ipython)
    except TraitError:  # a bad value in the config
        get_logger().debug("hubprobe.notice: not started", exc_info=True)
        return
    if notice.quietly(lambda: notice.start(ipython, _kernel_id(), _state_path())):
        _active = notice


def unload_ipython_extension(ipython: Any) -> None:  # noqa: ARG001 - IPython's signature
    global _active  # noqa: PLW0603
    if _active is not None:
        _active.stop()
        _active = None
