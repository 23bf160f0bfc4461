"""Machine output: one JSON envelope for every command, written to a file or stdout.

Every JSON that hubprobe writes starts with the same keys (``format``,
``hubprobe_version``, ``date``, ``command``) and names a profile the same way
(an object with its name and limits), so a script reads ``limits --json``,
``sandbox --json`` and ``check --json`` with one parser. ``-`` means
standard output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubprobe import __version__
from hubprobe.errors import UsageError
from hubprobe.files import write_atomic

if TYPE_CHECKING:
    from hubprobe.profiles import Profile

__all__ = [
    "FORMAT",
    "STDOUT",
    "destination",
    "envelope",
    "profile_dict",
    "write_json",
    "write_json_value",
]

#: The version of every JSON output's layout; raised when a key changes meaning.
FORMAT = 2
STDOUT = "-"


def envelope(command: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "hubprobe_version": __version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
    }


def profile_dict(profile: Profile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "memory_limit_bytes": profile.memory_limit_bytes,
        "cpu_limit": profile.cpu_limit,
        "storage_bytes": profile.storage_bytes,
        "oom_scope": profile.oom_scope,
    }


def destination(option: str, name: str | None) -> str | Path | None:
    """Where an output goes, checked before anything runs: a path, ``-``, or None."""
    if name is None or name == STDOUT:
        return name
    path = Path(name)
    if path.is_dir():
        raise UsageError(f"{option} {name}: is a folder", "give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {name}: no folder to write it in", "create the folder first")
    probe = path if path.exists() else path.parent
    if not _writable(probe):
        raise UsageError(f"{option} {name}: cannot be written here", "choose another file")
    return path


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def write_json(dest: str | Path | None, data: dict[str, Any]) -> None:
    write_json_value(dest, data)


def write_json_value(dest: str | Path | None, data: Any) -> None:
    """Any JSON value (``probes --status`` writes a list of rows)."""
    if dest is None:
        return
    text = json.dumps(data, indent=2) + "\n"
    if dest == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(Path(dest), text)
