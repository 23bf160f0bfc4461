"""A watchdog per sandbox: the sandbox dies with hubprobe, even on SIGKILL.

hubprobe starts it in a session of its own, holding the read end of a pipe
whose write end only hubprobe holds. When hubprobe ends its sandbox it
writes ``done`` and the watchdog exits; when hubprobe dies any other way
the kernel closes the write end, the watchdog reads end-of-file and
removes everything the sandbox's record lists.

Run as ``python -m hubprobe.sandbox.watchdog RECORD FD``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["Watchdog"]


class Watchdog:
    def __init__(self, record: Path) -> None:
        read, self._write = os.pipe()  # both ends close-on-exec: no other child inherits them
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "hubprobe.sandbox.watchdog", str(record), str(read)],
                pass_fds=(read,), start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            os.close(read)

    def done(self) -> None:
        """The sandbox is down: let the watchdog go, and reap it."""
        if self._write < 0:
            return
        with contextlib.suppress(OSError):  # it may have gone already
            os.write(self._write, b"done")
        os.close(self._write)
        self._write = -1
        self._proc.wait()


def _main(record_path: str, fd: str) -> None:
    # A Ctrl-C or a hang-up of hubprobe's terminal must not stop the watchdog first.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    pipe = int(fd)
    while True:
        try:
            data = os.read(pipe, 64)
        except InterruptedError:
            continue
        if data.startswith(b"done"):
            return
        if not data:
            break
    from hubprobe.sandbox import registry

    record = registry.load(Path(record_path))
    if record is not None:
        registry.remove(record)
        registry.forget(record)


if __name__ == "__main__":
    _main(*sys.argv[1:3])
