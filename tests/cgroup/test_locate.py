"""The one cgroup locator, over fixture trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubprobe.cgroup.fs import CgroupMount
from hubprobe.cgroup.locate import NoCgroup, locate


def test_v1_preferred_and_v2_on_request(tmp_path: Path) -> None:
    v1 = tmp_path / "memory" / "pod"
    v1.mkdir(parents=True)
    v2 = tmp_path / "unified" / "pod"
    v2.mkdir(parents=True)
    mounts = [
        CgroupMount(tmp_path / "memory", 1, frozenset({"memory"}), "memory"),
        CgroupMount(tmp_path / "unified", 2, frozenset(), ""),
    ]
    own = {"memory": "/pod", "": "/pod"}
    assert (locate(own, mounts).version, locate(own, mounts).memory) == (1, v1)
    assert (locate(own, mounts, version=2).version, locate(own, mounts, version=2).memory) == (
        2,
        v2,
    )
    with pytest.raises(NoCgroup, match="no cgroup v1 memory hierarchy"):
        locate({"": "/pod"}, mounts, version=1)
    with pytest.raises(NoCgroup, match="no cgroup v2 hierarchy"):
        locate(own, mounts[:1], version=2)


def test_container_without_cgroup_namespace_reads_its_mount_root(tmp_path: Path) -> None:
    # /proc/self/cgroup names the host's path, but the mount's root is ours.
    point = tmp_path / "memory"
    point.mkdir()
    mounts = [CgroupMount(point, 1, frozenset({"memory"}), "memory")]
    own = {"memory": "/docker/0123abcd"}
    assert locate(own, mounts).memory == point
    with pytest.raises(NoCgroup, match="not under"):
        locate(own, mounts, strict=True)
    with pytest.raises(NoCgroup, match="no memory cgroup"):
        locate({"cpu": "/"}, mounts)
