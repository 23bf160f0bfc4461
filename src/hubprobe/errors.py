"""One error base and one set of exit codes for every command.

A :class:`HubprobeError` carries the reason, what to do about it, and the
exit code the command ends with, so the CLI prints one line and exits the
same way wherever the error was raised. :class:`ExitCode` is the single list
of what hubprobe's exit statuses mean; ``--help`` texts are made from it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import ClassVar

__all__ = ["ExitCode", "HubprobeError", "UsageError", "exit_help"]


class ExitCode(enum.IntEnum):
    """What hubprobe's exit statuses mean, the same in every command."""

    OK = 0
    #: probes: a claim failed; doctor: no backend works here.
    FAILED = 1
    #: Bad input (a missing file, an unknown profile or backend, a bad value): nothing was run.
    USAGE = 2
    #: check verdicts, worst last.
    TIGHT = 3
    TIMEOUT = 4
    ERROR = 5
    KILLED = 6
    #: profile --compare: a measured value differs from the profile's.
    DIFFERS = 7
    #: --hub: no JupyterHub answers at the URL (a bad URL, a refused connection, not a hub).
    HUB_UNREACHABLE = 8
    #: --hub: the hub refused the token (wrong, expired, or without the scopes needed).
    HUB_AUTH = 9
    #: --hub: no such user, or the user's server is not running and would not start.
    HUB_NO_SERVER = 10
    #: sandbox: the command was stopped at --timeout (as coreutils' timeout).
    COMMAND_TIMEOUT = 124
    #: No sandbox could be made here (see ``hubprobe doctor``), as ``docker run`` uses 125.
    NO_SANDBOX = 125
    #: hubprobe itself was interrupted: 128 + the signal's number.
    SIGHUP = 129
    SIGINT = 130
    SIGQUIT = 131
    SIGTERM = 143


_MEANING = {
    ExitCode.OK: "success (check: fits, the peak stayed under 80% of the memory limit)",
    ExitCode.FAILED: "a claim failed (probes), no backend works here (doctor)",
    ExitCode.USAGE: "bad input: a missing file, an unknown profile or backend, a bad value;"
    " nothing was run",
    ExitCode.TIGHT: "tight: the peak reached 80% of the memory limit or more",
    ExitCode.TIMEOUT: "timeout: a cell ran longer than --cell-timeout",
    ExitCode.ERROR: "error: a cell raised an exception (not tagged raises-exception)",
    ExitCode.KILLED: "killed: the kernel was killed (out of memory) during a cell",
    ExitCode.DIFFERS: "a measured value differs from the compared profile (each is listed)",
    ExitCode.HUB_UNREACHABLE: "no JupyterHub answers at the URL (bad URL, connection refused,"
    " not a hub, or the local hub would not start)",
    ExitCode.HUB_AUTH: "the hub refused the token (wrong or expired, or without the scopes)",
    ExitCode.HUB_NO_SERVER: "no such user on the hub, or the user's server would not start",
    ExitCode.COMMAND_TIMEOUT: "the command was stopped at --timeout",
    ExitCode.NO_SANDBOX: "no sandbox could be made here (see hubprobe doctor)",
    ExitCode.SIGHUP: "hubprobe's terminal went away (SIGHUP); everything was torn down",
    ExitCode.SIGINT: "hubprobe was interrupted (SIGINT, Ctrl-C); everything was torn down",
    ExitCode.SIGQUIT: "hubprobe was asked to quit (SIGQUIT); everything was torn down",
    ExitCode.SIGTERM: "hubprobe was stopped (SIGTERM); everything was torn down",
}


def exit_help(codes: Iterable[ExitCode], *, extra: str = "") -> str:
    """The "exit status" block of a command's ``--help``, from the one table above."""
    lines = ["exit status:"]
    if extra:
        lines.append(f"  {extra}")
    lines += [f"  {int(c):<4} {_MEANING[c]}" for c in codes]
    return "\n".join(lines)


class HubprobeError(Exception):
    """Something hubprobe cannot do; ``str()`` is one line: the reason, then the fix."""

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE

    def __init__(self, reason: str, fix: str = "") -> None:
        self.reason = reason
        self.fix = fix
        text = reason + (f"; {fix}" if fix else "")
        # One line, always: the CLI prints it as is, and scripts grep it.
        super().__init__(" ".join(text.split()))


class UsageError(HubprobeError):
    """A bad argument or input, found before anything was run."""

    exit_code = ExitCode.USAGE
