"""Execute one cell through the server's websocket and observe what happens.

Per cell: outputs, wall time, CPU seconds, peak memory and throttling of the
whole sandbox, OOM kills, and the kernel status messages a browser would get
(``restarting``, ``dead``). A kernel death is an observation, not an error.
Handles what the field notes warn about: a new websocket after a restart,
late output from the dead kernel (filtered by parent id), pings (answered by
websocket-client), and per-cell timeouts.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import time
from typing import Any, Protocol

import websocket

from hubprobe.jupyter.api import ApiError, KernelSocket, ServerAPI
from hubprobe.sandbox import Reading

__all__ = ["KERNEL_DIED", "CellRun", "Meter", "Outcome", "execute_cell", "wait_usable"]


class Meter(Protocol):
    """Where a cell's memory, CPU and OOM kills are read: the sandbox's cgroup, or, on a
    hub, the server's own cgroup read from inside it (:mod:`hubprobe.hub.meter`).

    A meter whose readings cost something says how often to sample in a
    ``sample_seconds`` attribute (default :data:`SAMPLE_SECONDS`)."""

    def reading(self) -> Reading: ...

    def reset_peak(self) -> bool: ...


class Outcome(enum.StrEnum):
    """What happened to one cell; the values are what reports and notebooks store."""

    OK = "ok"
    ERROR = "error"
    #: The kernel died and the server restarted it (the student sees "Kernel Restarting").
    KILLED = "killed"
    #: The server gave up restarting the kernel (its restart limit).
    DEAD = "dead"
    TIMEOUT = "timeout"
    #: The whole server went away (an OOM scope of the container).
    SERVER_DIED = "server-died"
    NOT_RUN = "not-run"


#: Every way the kernel can die under a cell.
KERNEL_DIED = frozenset({Outcome.KILLED, Outcome.DEAD, Outcome.SERVER_DIED})

OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")
# Words that would tell a student memory was the problem.
_MEMORY_WORDS = re.compile(r"memory|\boom\b|out of mem", re.IGNORECASE)
SAMPLE_SECONDS = 0.1


@dataclasses.dataclass
class CellRun:
    index: int  # 1-based over all cells, markdown included, as a reader counts
    outcome: Outcome
    error_name: str | None = None
    outputs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    throttled_seconds: float = 0.0
    peak_memory_bytes: int = 0
    #: The working set's peak (usage minus inactive file cache, as Kubernetes judges):
    #: the largest of the samples, and of the peak less the most cache seen in the cell.
    peak_working_set_bytes: int = 0
    oom_kills: int = 0
    kernel_statuses: list[str] = dataclasses.field(default_factory=list)
    seconds_to_restarting: float | None = None
    seconds_to_usable: float | None = None
    memory_mentioned: bool = False
    memory_samples: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    #: What the runner's own silent code printed after the cell (``after_code``).
    inspected: str | None = None
    execution_count: int | None = None  # the kernel's In [n], shown beside the cell

    def __post_init__(self) -> None:
        self.outcome = Outcome(self.outcome)  # a stored string reads back as the enum

    def metadata(self) -> dict[str, Any]:
        """What is stored in the executed notebook's cell metadata."""
        keep = (
            "outcome", "error_name", "wall_seconds", "cpu_seconds", "throttled_seconds",
            "peak_memory_bytes", "peak_working_set_bytes", "oom_kills", "kernel_statuses", "seconds_to_restarting",
            "seconds_to_usable", "memory_samples",
        )  # fmt: skip
        out = {k: getattr(self, k) for k in keep}
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 3)
        return out


def _to_output(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """An iopub message as an nbformat v4 output."""
    if msg_type == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": content["ename"],
            "evalue": content["evalue"],
            "traceback": content["traceback"],
        }
    out: dict[str, Any] = {
        "output_type": msg_type,
        "data": content.get("data", {}),
        "metadata": content.get("metadata", {}),
    }
    if msg_type == "execute_result":
        out["execution_count"] = content.get("execution_count")
    return out


def execute_cell(
    meter: Meter,
    api: ServerAPI,
    sock: KernelSocket,
    index: int,
    source: str,
    timeout: float,
    server_alive: Any,
) -> CellRun:
    """Run ``source``; returns when it finished, was killed, or timed out."""
    run = CellRun(index=index, outcome=Outcome.OK)
    meter.reset_peak()
    before = meter.reading()
    start = time.monotonic()
    msg_id = sock.execute_request(source)
    idle = replied = False
    next_sample = start
    working_set = before.working_set_bytes
    cache = before.memory_bytes - before.working_set_bytes
    while not (idle and replied):
        now = time.monotonic()
        if now >= next_sample:
            sample = meter.reading()
            run.memory_samples.append((round(now - start, 2), sample.memory_bytes))
            working_set = max(working_set, sample.working_set_bytes)
            cache = max(cache, sample.memory_bytes - sample.working_set_bytes)
            next_sample = now + getattr(meter, "sample_seconds", SAMPLE_SECONDS)
        if now - start > timeout:
            run.outcome = Outcome.TIMEOUT
            break
        try:
            msg = sock.recv(min(SAMPLE_SECONDS, start + timeout - now))
        except (websocket.WebSocketException, OSError):
            msg = None
            if not server_alive():
                run.outcome = Outcome.SERVER_DIED
                run.kernel_statuses.append("connection-lost")
                break
        if msg is None:
            if not server_alive():
                run.outcome = Outcome.SERVER_DIED
                run.kernel_statuses.append("connection-lost")
                break
            continue
        kind = msg.get("msg_type", "")
        content = msg.get("content", {})
        ours = msg.get("parent_header", {}).get("msg_id") == msg_id
        if not (ours and kind in ("stream", "display_data", "execute_result", "execute_input")):
            # What the client shows beyond the cell's own prints: statuses, errors.
            run.memory_mentioned |= bool(_MEMORY_WORDS.search(json.dumps(content)))
        if kind == "status" and content.get("execution_state") in ("restarting", "dead"):
            run.kernel_statuses.append(content["execution_state"])
            run.seconds_to_restarting = time.monotonic() - start
            run.outcome = (
                Outcome.KILLED if content["execution_state"] == "restarting" else Outcome.DEAD
            )
            break
        if not ours:
            continue  # late output of a dead kernel, or another client's
        if kind == "status":
            idle = content.get("execution_state") == "idle"
        elif kind == "execute_reply":
            replied = True
            if content.get("status") == "error" and run.outcome == Outcome.OK:
                # The reply says it raised though no error output came: right after a
                # restart the first iopub messages can be lost (field notes).
                run.outcome = Outcome.ERROR
                run.error_name = content.get("ename")
            # Only a reply numbers the cell, as in JupyterLab: a killed cell shows [ ].
            run.execution_count = content.get("execution_count")
        elif kind in OUTPUT_TYPES:
            output = _to_output(kind, content)
            last = run.outputs[-1] if run.outputs else None
            if kind == "stream" and last and last.get("name") == output["name"]:
                last["text"] += output["text"]  # as a notebook shows consecutive prints
            else:
                run.outputs.append(output)
            if kind == "error":
                run.outcome = Outcome.ERROR
                run.error_name = content.get("ename")
    after = meter.reading()
    run.wall_seconds = time.monotonic() - start
    run.cpu_seconds = after.cpu_seconds - before.cpu_seconds
    run.throttled_seconds = after.throttled_seconds - before.throttled_seconds
    run.peak_memory_bytes = after.peak_memory_bytes
    cache = max(cache, after.memory_bytes - after.working_set_bytes)
    # The peak itself is the kernel's high-water mark, between samples; the cache it held
    # then is not known, so the most seen in the cell is taken off (never below a sample).
    run.peak_working_set_bytes = min(
        max(working_set, after.working_set_bytes, after.peak_memory_bytes - cache),
        after.peak_memory_bytes,
    )
    run.oom_kills = after.oom_kills - before.oom_kills
    if run.outcome == Outcome.TIMEOUT:
        _stop_runaway(api, sock)
    return run


def _stop_runaway(api: ServerAPI, sock: KernelSocket) -> None:
    """After a timeout: interrupt, as the stop button does; give it a few seconds."""
    try:
        api.interrupt_kernel(sock.kernel_id)
    except (ApiError, OSError):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        msg = sock.recv(0.5)
        if (
            msg
            and msg.get("msg_type") == "status"
            and msg["content"].get("execution_state") == "idle"
        ):
            return


def wait_usable(
    api: ServerAPI, kernel_id: str, timeout: float = 60.0
) -> tuple[KernelSocket | None, str]:
    """After a restart: a fresh websocket that gets a kernel_info_reply.

    Returns (socket, "usable") or (None, "dead") when the server gave up
    (after its restart limit the kernel id is gone: 404), or (None, "timeout").
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.kernel(kernel_id) is None:
            return None, "dead"
        try:
            sock = api.connect(kernel_id)
        except (websocket.WebSocketException, OSError):
            time.sleep(0.1)
            continue
        if sock.kernel_info(timeout=2.0) is not None:
            return sock, "usable"
        sock.close()
    return None, "timeout"
