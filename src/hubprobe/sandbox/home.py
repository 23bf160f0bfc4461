"""The private home: a sparse ext4 image of the profile's storage size.

Writing past the size fails with ENOSPC at once, as on a hub's volume, while
the image stays a few MiB on the host's disk. The image is loop-mounted
*inside* the sandbox's mount namespace with ``mount -o loop`` (autoclear), so
the mount and the loop device go away with the last process of the sandbox;
:func:`release` waits for that and then removes the files.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from hubprobe.sandbox.base import SandboxError

__all__ = ["attach", "loop_devices_for", "make_image", "release"]

_SYS_BLOCK = Path("/sys/block")


def make_image(path: Path, size_bytes: int, owner: tuple[int, int] | None = None) -> None:
    """Create a sparse ext4 image; ``-m 0``: a student's volume has no root reserve.

    ``owner``: the uid and gid of the image's root folder (jovyan's, in a container).

    Refuses when the host's disk could not hold the image filled up: a probe
    that fills its home must hit the home's limit, never the host's.
    """
    free = shutil.disk_usage(path.parent).free
    if free < size_bytes:
        raise SandboxError(
            f"the private home needs up to {size_bytes / 2**30:.1f} GiB on {path.parent}'s disk, "
            f"which has {free / 2**30:.1f} GiB free; set TMPDIR to a larger disk"
        )
    with path.open("wb") as f:
        f.truncate(size_bytes)
    result = subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-m",
            "0",
            "-L",
            "hubprobe-home",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1"
            + (f",root_owner={owner[0]}:{owner[1]}" if owner else ""),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        msg = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output"
        raise SandboxError(f"mkfs.ext4 failed on {path}: {msg}; is e2fsprogs installed?")
    if owner is not None:
        # A hub's home has no lost+found; without root inside, nobody could remove it.
        subprocess.run(
            ["debugfs", "-w", "-R", "rmdir lost+found", str(path)],
            capture_output=True, check=False,
        )  # fmt: skip


def attach(image: Path) -> str:
    """A loop device for ``image``, as ``/dev/loopN``; detached by :func:`release`."""
    result = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        said = result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise SandboxError(f"losetup could not attach {image}: {said[0]}; are loop devices free?")
    return result.stdout.strip()


def loop_devices_for(image: Path, sys_block: Path = _SYS_BLOCK) -> list[str]:
    """Loop devices backed by ``image`` (read from sysfs: no subprocess)."""
    wanted = str(image.resolve())
    found = []
    for backing in sys_block.glob("loop*/loop/backing_file"):
        try:
            text = backing.read_text().strip()
        except OSError:
            continue
        if text.removesuffix(" (deleted)") == wanted:
            found.append("/dev/" + backing.parent.parent.name)
    return found


def release(workdir: Path, image: Path, wait_seconds: float = 3.0) -> None:
    """Wait for the loop device to detach, force it if it does not, remove the files."""
    deadline = time.monotonic() + wait_seconds
    devices = loop_devices_for(image) if image.exists() else []
    while devices and time.monotonic() < deadline:
        time.sleep(0.01)
        devices = loop_devices_for(image)
    for dev in devices:
        # Only reached if something outside the sandbox still holds the mount.
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
    shutil.rmtree(workdir, ignore_errors=True)
