"""Readings on a hub: the server's own cgroup, read by a small helper kernel inside it.

Locally the runner reads the sandbox's cgroup from outside. On a hub
nothing outside the pod is ours, so a second kernel in the same server
(the same cgroup as the kernel under test, as every kernel of a pod shares
one) runs :data:`~hubprobe.hub.inside_code.READING` whenever the runner
asks. What this costs in precision, said where it matters:

- the helper kernel's own memory (some tens of MiB) counts against the
  limit, as a second open notebook would;
- a reading is a round trip through the hub's proxy (milliseconds) and
  runs in the session's own CPU quota, so usage is sampled once a second
  instead of ten times;
- the cgroup is read-only inside, so the peak cannot be reset per cell: a
  cell's peak is the cgroup's high-water mark when that rose during the
  cell (then it is exact), else the largest usage sampled during it (a
  lower bound).
"""

from __future__ import annotations

import contextlib
import json
import time

import websocket

from hubprobe.hub.inside_code import PRELUDE, READING
from hubprobe.jupyter.api import ApiError, KernelSocket, ServerAPI
from hubprobe.sandbox import Reading

__all__ = ["KernelMeter", "ServerWatch"]


class KernelMeter:
    """A :class:`~hubprobe.jupyter.cells.Meter` backed by a helper kernel; close it after."""

    #: Each reading runs code in the session's own CPU quota: sample once a second, not
    #: ten times as from outside, so the helper takes little from the cell under test.
    sample_seconds = 1.0

    def __init__(self, api: ServerAPI, path: str = "") -> None:
        self.api = api
        self.kernel_id = api.start_kernel(path=path)
        self._sock: KernelSocket | None = api.connect(self.kernel_id)
        self._sock.execute(PRELUDE, timeout=60)
        self._started = time.monotonic()
        self._last = Reading(0, 0, None, 0, 0.0, 0.0, 0.0)
        self._window_peak = 0  # the cgroup's high-water mark when the window began
        self._sampled = 0  # the largest usage read in this window
        self._last = self._read()
        self._window_peak = self._last.peak_memory_bytes

    def _read(self) -> Reading:
        if self._sock is None:
            return self._last
        try:
            out = self._sock.execute(READING, timeout=10)
            data = json.loads("".join(o.get("text", "") for o in out).strip().splitlines()[-1])
        except (TimeoutError, RuntimeError, ValueError, IndexError, OSError,
                websocket.WebSocketException):  # fmt: skip
            # The server went away (an OOM scope of the whole pod): the last reading stands.
            self._sock.close()
            self._sock = None
            return self._last
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

    def close(self, last: str = "") -> None:
        """End the helper kernel, after running ``last`` in it (a clean-up) if given."""
        if self._sock is not None and last:
            with contextlib.suppress(TimeoutError, RuntimeError, OSError,
                                     websocket.WebSocketException):  # fmt: skip
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
