"""The bootstrap that turns a plain process into a container-like one.

Run by ``/bin/sh`` so that start-up stays a few milliseconds: join the
sandbox's cgroups, ``unshare`` a cgroup and a mount namespace, remount the
cgroup hierarchies there (so ``/sys/fs/cgroup/...`` shows the sandbox's own
limits, which is where joblib and loky look), loop-mount the home, then
``exec`` the command, keeping the pid.

The command keeps root but loses two capabilities, as in a hub's container:
CAP_SYS_ADMIN (so it cannot remount the read-only cgroup files and raise its
own limits) and CAP_SYS_RESOURCE (so ext4's reserved blocks are off limits and
a full home really is full, as it is for the unprivileged jovyan user). Parameters travel in environment
variables that are unset before the command starts, never spliced into the
script.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from hubprobe.cgroup.fs import CgroupMount

__all__ = ["bootstrap_argv", "bootstrap_env"]

_OUTER = r"""
set -e
for f in $HUBPROBE_SB_PROCS; do echo $$ > "$f"; done
exec unshare --cgroup --mount --propagation private -- /bin/sh -c "$HUBPROBE_SB_INNER" sh "$@"
"""

_INNER = r"""
set -e
echo "$HUBPROBE_SB_REMOUNT" | while read -r kind opts point; do
  [ -n "$point" ] || continue
  umount "$point"
  if [ "$kind" = 2 ]; then mount -t cgroup2 -o ro cgroup2 "$point";
  else mount -t cgroup -o "ro,$opts" cgroup "$point"; fi
done
if [ -n "$HUBPROBE_SB_IMAGE" ]; then
  mount -o loop,nosuid,nodev "$HUBPROBE_SB_IMAGE" "$HOME"
  rmdir "$HOME/lost+found" 2>/dev/null || true  # a hub's home has none
fi
cd "$HUBPROBE_SB_CWD"
unset HUBPROBE_SB_PROCS HUBPROBE_SB_INNER HUBPROBE_SB_REMOUNT HUBPROBE_SB_IMAGE HUBPROBE_SB_CWD
exec setpriv --bounding-set -sys_admin,-sys_resource -- "$@"
"""


def bootstrap_argv(argv: Sequence[str]) -> list[str]:
    return ["/bin/sh", "-c", _OUTER, "hubprobe-sandbox", *argv]


def bootstrap_env(
    procs_files: Iterable[Path],
    remount: Iterable[CgroupMount],
    image: Path | None,
    cwd: str,
) -> dict[str, str]:
    """Variables for the bootstrap; paths must not contain whitespace."""
    procs = [str(p) for p in procs_files]
    if any(any(c.isspace() for c in p) for p in procs):
        raise ValueError(f"cgroup paths with whitespace are not supported: {procs}")
    lines = [f"{m.version} {m.options or '-'} {m.mountpoint}" for m in remount]
    return {
        "HUBPROBE_SB_PROCS": " ".join(procs),
        "HUBPROBE_SB_INNER": _INNER,
        "HUBPROBE_SB_REMOUNT": "\n".join(lines),
        "HUBPROBE_SB_IMAGE": str(image) if image else "",
        "HUBPROBE_SB_CWD": cwd,
    }
