"""What is copied into the home: the notebook's folder, or the course repository around it.

A course repository is pulled onto the hub whole (nbgitpuller), and its
notebooks read ``../data/...``; copying only the notebook's folder would
fail them where the hub would not. So the root is ``--root DIR`` if given,
else the top of the git work tree holding the notebook, else the notebook's
folder; the kernel starts at the notebook's place inside the copy, as the
hub's does when a student opens it. The copy's size is checked against the
profile's storage before anything runs.

Inside a git work tree, what is copied is what git would hand out: the
tracked files and the untracked ones it does not ignore (so a virtual
environment or a download cache in the checkout stays behind, as it would
on the hub).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from hubprobe.errors import UsageError
from hubprobe.units import format_bytes

__all__ = ["COPY_SKIPS", "Layout", "folder_size", "git_files", "git_top", "layout_for"]

#: Not copied: git's own store (nothing a notebook reads, often the largest part)
#: and Jupyter's checkpoints.
COPY_SKIPS = (".git", ".ipynb_checkpoints")


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path  # copied into the home
    notebook: Path  # the notebook, inside root
    chosen_by: str  # "--root", "git work tree", "the notebook's folder"
    size_bytes: int
    #: The files to copy, relative to root: what git lists, else every file but COPY_SKIPS.
    files: tuple[str, ...] = ()

    @property
    def kernel_path(self) -> str:
        """The notebook's folder relative to the home: where its kernel starts."""
        rel = self.notebook.parent.relative_to(self.root)
        return "" if rel == Path() else rel.as_posix()

    def describe(self) -> str:
        return f"{self.root} ({format_bytes(self.size_bytes, measured=True)}, {self.chosen_by})"


def folder_size(folder: Path, skip: tuple[str, ...] = COPY_SKIPS) -> int:
    """Bytes a copy of ``folder`` needs, symlinks not followed (they are copied as links)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            try:
                total += Path(root, name).lstat().st_size
            except OSError:
                continue
    return total


def git_top(folder: Path) -> Path | None:
    """The top of the git work tree holding ``folder``, or None (no git, or not in one)."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(
            [git, "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    top = out.stdout.strip()
    return Path(top) if out.returncode == 0 and top else None


def git_files(top: Path) -> tuple[str, ...] | None:
    """What a clone of the work tree at ``top`` holds, plus untracked files git does not ignore."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(
            [git, "-C", str(top), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    names = [n for n in out.stdout.decode(errors="surrogateescape").split("\0") if n]
    # Deleted but not yet committed: git still lists them; there is nothing to copy.
    return tuple(n for n in names if (top / n).is_file() or (top / n).is_symlink())


def _walk_files(top: Path, skip: tuple[str, ...] = COPY_SKIPS) -> tuple[str, ...]:
    out = []
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in skip]
        out += [Path(root, name).relative_to(top).as_posix() for name in files]
    return tuple(out)


def _size_of(top: Path, files: tuple[str, ...]) -> int:
    total = 0
    for name in files:
        try:
            total += (top / name).lstat().st_size
        except OSError:
            continue
    return total


def layout_for(notebook: Path, root: str | None, storage_bytes: int) -> Layout:
    """Where the notebook sits and what is copied; raise UsageError for a root that cannot be."""
    nb = notebook.resolve()
    if root is not None:
        top, chosen_by = Path(root).expanduser().resolve(), "--root"
        if not top.is_dir():
            raise UsageError(
                f"--root {root}: no such folder", "give the course repository's folder"
            )
        if not nb.is_relative_to(top):
            raise UsageError(
                f"--root {root}: {notebook} is not inside it",
                "give a folder that holds the notebook",
            )
    else:
        found = git_top(nb.parent)
        top, chosen_by = (found, "git work tree") if found else (nb.parent, "the notebook's folder")
    listed = git_files(top) if git_top(top) is not None else None
    files = listed if listed is not None else _walk_files(top)
    size = _size_of(top, files)
    if size >= storage_bytes:
        raise UsageError(
            f"{top}: holds {format_bytes(size, measured=True)}, more than the profile's "
            f"{format_bytes(storage_bytes)} home",
            "give --root a folder with only what the notebooks read",
        )
    return Layout(root=top, notebook=nb, chosen_by=chosen_by, size_bytes=size, files=files)
