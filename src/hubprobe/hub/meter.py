"""Readings on a hub: the server's own cgroup, read from inside the server.

Locally the runner reads the sandbox's cgroup from outside. On a hub
nothing outside the pod is ours, so the server itself reads it:
:class:`FileMeter` has a short-lived kernel put links to the cgroup's files
in the run's folder and end, then reads them through the server's contents
API, so that no process of hubprobe's stays in the session while the
notebook runs (a helper kernel held some 35 MiB of the limit and showed in
the memory indicator). Where the server will not read them (a contents
manager that refuses a link out of the home), :class:`KernelMeter` runs
:data:`~hubprobe.hub.inside_code.READING` in a helper kernel that stays.
What this costs in precision, said where it matters:

- a reading is a round trip through the hub's proxy (milliseconds) and
  runs in the session's own CPU quota, so usage is sampled once a second
  instead of ten times;
- the cgroup is read-only inside, so the peak cannot be reset per cell: a
  cell's peak is the cgroup's high-water mark when that rose during the
  cell (then it is exact), else the largest usage sampled during it (a
  lower bound);
- with :class:`KernelMeter`, the helper kernel's own memory counts against
  the limit, as a second open notebook would.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
from typing import Any

import websocket

from hubprobe.hub.inside_code import LINKS, PRELUDE, READING
from hubprobe.jupyter.api import ApiError, KernelSocket, ServerAPI
from hubprobe.sandbox import Reading

__all__ = ["FileMeter", "KernelMeter", "MeterUnavailable", "ServerWatch", "run_once"]

_SOCKET_ERRORS = (TimeoutError, RuntimeError, OSError, websocket.WebSocketException)


class MeterUnavailable(Exception):
    """This server cannot be read this way; the reason is the message."""


def outputs_once(
    api: ServerAPI, code: str, path: str = "", timeout: float = 60
) -> list[dict[str, Any]]:
    """Run ``code`` in a fresh kernel in ``path`` and end the kernel; its outputs."""
    kernel_id = api.start_kernel(path=path)
    try:
        sock = api.connect(kernel_id)
        try:
            return sock.execute(code, timeout=timeout)
        finally:
            sock.close()
    finally:
        with contextlib.suppress(ApiError, OSError):
            api.delete_kernel(kernel_id)


def run_once(api: ServerAPI, path: str, code: str, timeout: float = 60) -> str:
    """Run ``code`` in a fresh kernel in ``path`` and end the kernel; its printed text."""
    return "".join(o.get("text", "") for o in outputs_once(api, code, path, timeout))


def _last_json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return data


def _flat(text: str) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.events, memory.oom_control) with integer values."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value.strip())
    return out


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


class _WindowMeter:
    """The peak per cell from readings of a cgroup whose own peak cannot be reset."""

    #: Each reading runs in the session's own CPU quota: sample once a second, not ten
    #: times as from outside, so that reading takes little from the cell under test.
    sample_seconds = 1.0

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._last = Reading(0, 0, None, 0, 0.0, 0.0, 0.0)
        self._window_peak = 0  # the cgroup's high-water mark when the window began
        self._sampled = 0  # the largest usage read in this window

    def _begin(self) -> None:
        self._last = self._read()
        self._window_peak = self._last.peak_memory_bytes

    def _read(self) -> Reading:
        raise NotImplementedError

    def _reading(self, data: dict[str, Any]) -> Reading:
        return Reading(
            memory_bytes=int(data["memory_bytes"]),
            peak_memory_bytes=int(data["peak_memory_bytes"]),
            memory_limit_bytes=None,
            oom_kills=int(data["oom_kills"]),
            cpu_seconds=float(data["cpu_seconds"]),
            throttled_seconds=float(data["throttled_seconds"]),
            wall_seconds=time.monotonic() - self._started,
        )

    def reading(self) -> Reading:
        raw = self._read()
        self._last = raw
        self._sampled = max(self._sampled, raw.memory_bytes)
        # The high-water mark rose in this window: it is this window's peak, exactly.
        peak = raw.peak_memory_bytes if raw.peak_memory_bytes > self._window_peak else 0
        return Reading(
            memory_bytes=raw.memory_bytes,
            peak_memory_bytes=max(peak, self._sampled),
            memory_limit_bytes=raw.memory_limit_bytes,
            oom_kills=raw.oom_kills,
            cpu_seconds=raw.cpu_seconds,
            throttled_seconds=raw.throttled_seconds,
            wall_seconds=raw.wall_seconds,
        )

    def reset_peak(self) -> bool:
        """Begin a new window for the peak (the cgroup's own cannot be reset from inside)."""
        self._window_peak = self._last.peak_memory_bytes
        self._sampled = self._last.memory_bytes
        return True


class FileMeter(_WindowMeter):
    """A :class:`~hubprobe.jupyter.cells.Meter` reading the cgroup's files through the
    server's contents API, from links in ``folder`` (a folder of the run's own, removed
    with it); no process of ours stays in the session. Close it after.

    Raises :class:`MeterUnavailable` where the server will not read them.
    """

    def __init__(self, api: ServerAPI, folder: str) -> None:
        super().__init__()
        self.api = api
        self.folder = folder
        self._alive = True
        try:
            made = _last_json(run_once(api, folder, PRELUDE + LINKS))
        except (ApiError, ValueError, IndexError, KeyError, *_SOCKET_ERRORS) as exc:
            raise MeterUnavailable(f"no links to the cgroup's files: {exc}") from None
        self.version = int(made.get("version", 0))
        self.files: dict[str, str] = dict(made.get("files", {}))
        if not {"usage", "peak", "oom", "cpustat"} <= set(self.files):
            raise MeterUnavailable(f"cgroup files missing: {sorted(self.files)}")
        try:
            self._last = self._reading(self._fetch())
        except (ApiError, ValueError, KeyError, OSError) as exc:
            raise MeterUnavailable(f"the server does not read the cgroup's files: {exc}") from None
        self._window_peak = self._last.peak_memory_bytes

    def _get(self, key: str) -> str:
        path = urllib.parse.quote(f"{self.folder}/{self.files[key]}")
        model = self.api.request("GET", f"/api/contents/{path}?type=file&format=text&content=1")
        return str(model["content"])

    def _fetch(self) -> dict[str, Any]:
        usage, peak = _int(self._get("usage")), _int(self._get("peak"))
        events, stat = _flat(self._get("oom")), _flat(self._get("cpustat"))
        if self.version == 1:
            cpu = _int(self._get("cpu")) / 1e9 if "cpu" in self.files else 0.0
            throttled = stat.get("throttled_time", 0) / 1e9
        else:
            cpu, throttled = stat.get("usage_usec", 0) / 1e6, stat.get("throttled_usec", 0) / 1e6
        return {"memory_bytes": usage, "peak_memory_bytes": peak,
                "oom_kills": events.get("oom_kill", 0), "cpu_seconds": cpu,
                "throttled_seconds": throttled}  # fmt: skip

    def _read(self) -> Reading:
        if not self._alive:
            return self._last
        try:
            return self._reading(self._fetch())
        except (ApiError, ValueError, KeyError, OSError):
            # The server went away (an OOM scope of the whole pod): the last reading stands.
            self._alive = False
            return self._last

    def close(self, last: str = "") -> None:
        """Run ``last`` (a clean-up) in a kernel of its own, if given and the server answers."""
        if last and self._alive:
            with contextlib.suppress(ApiError, ValueError, *_SOCKET_ERRORS):
                run_once(self.api, self.folder, last, timeout=30)


class KernelMeter(_WindowMeter):
    """A :class:`~hubprobe.jupyter.cells.Meter` backed by a helper kernel; close it after."""

    def __init__(self, api: ServerAPI, path: str = "") -> None:
        super().__init__()
        self.api = api
        self.kernel_id = api.start_kernel(path=path)
        self._sock: KernelSocket | None = api.connect(self.kernel_id)
        self._sock.execute(PRELUDE, timeout=60)
        self._begin()

    def _read(self) -> Reading:
        if self._sock is None:
            return self._last
        try:
            out = self._sock.execute(READING, timeout=10)
            data = _last_json("".join(o.get("text", "") for o in out))
        except (ValueError, IndexError, *_SOCKET_ERRORS):
            # The server went away (an OOM scope of the whole pod): the last reading stands.
            self._sock.close()
            self._sock = None
            return self._last
        return self._reading(data)

    def close(self, last: str = "") -> None:
        """End the helper kernel, after running ``last`` in it (a clean-up) if given."""
        if self._sock is not None and last:
            with contextlib.suppress(*_SOCKET_ERRORS):
                self._sock.execute(last, timeout=30)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(ApiError, OSError):
            self.api.delete_kernel(self.kernel_id)


class ServerWatch:
    """Whether the user's server still answers; asked at most once a second."""

    def __init__(self, api: ServerAPI, every: float = 1.0) -> None:
        self.api = api
        self.every = every
        self._checked = 0.0
        self._alive = True

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._alive and now - self._checked >= self.every:
            self._checked = now
            try:
                self.api.status()
            except (ApiError, OSError, ValueError):  # ValueError: the hub's page, not JSON
                self._alive = False
        return self._alive
