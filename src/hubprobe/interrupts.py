"""Ctrl-C, SIGTERM, SIGHUP and SIGQUIT: one request to stop, and teardown that cannot be cut.

The first signal raises :class:`Interrupted` where the program is, so every
sandbox unwinds through its ``with``; any further signal is the same request
again and is absorbed. While a sandbox tears down (:func:`shielded`), even
the first signal waits: it is raised once teardown is done, so a cgroup, a
mount or a container is never left half-removed by an impatient second
Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

__all__ = ["STOP_SIGNALS", "Interrupted", "install", "shielded"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Interrupted(Exception):
    """A stop signal arrived: unwind so every sandbox tears down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    pending: int | None = None  # the signal that asked to stop
    raised = False
    shield = 0


def _handler(signum: int, _frame: FrameType | None) -> None:
    if _State.pending is not None:
        return  # already stopping: the same request again
    _State.pending = signum
    if _State.shield == 0:
        _State.raised = True
        raise Interrupted(signum)


def install() -> None:
    """Route the stop signals through :func:`_handler` (the CLI does this once)."""
    _State.pending, _State.raised, _State.shield = None, False, 0
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold stop signals off; raise the one that came once the block is done."""
    _State.shield += 1
    try:
        yield
    finally:
        _State.shield -= 1
    if _State.shield == 0 and _State.pending is not None and not _State.raised:
        _State.raised = True
        raise Interrupted(_State.pending)
