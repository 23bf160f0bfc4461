"""The OCI spec as data: what the container is given, read from the dict runc gets."""

from __future__ import annotations

from typing import Any

from hubprobe.sandbox import oci_spec
from hubprobe.sandbox.oci_spec import SpecInput, build_spec, mount_points_to_make

HOST_MOUNTS = [
    "/", "/proc", "/sys", "/dev", "/dev/shm", "/sys/fs/cgroup", "/sys/fs/cgroup/memory",
    "/work", "/run/docker.sock", "/tmp/somewhere", "/mnt/data", "/mnt/data",
]  # fmt: skip


def spec(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "argv": ["python3", "-c", "1"],
        "env": {"PATH": "/usr/bin", "HOME": oci_spec.HOME},
        "cwd": oci_spec.HOME,
        "memory_bytes": 2 << 30,
        "cpu": 1.0,
        "pids": 1024,
        "loop_device": "/dev/loop7",
        "socket_dir": "/w/sock",
        "masks": "/w/masks",
        "host_mounts": HOST_MOUNTS,
        "expose": ["/root/.pyenv", "/work/main/src", "/tmp/venv"],
        "identity": "/w/etc",
    }
    values.update(changes)
    return build_spec(SpecInput(**values))


def mounts_at(s: dict[str, Any], dest: str) -> list[dict[str, Any]]:
    return [m for m in s["mounts"] if m["destination"] == dest]


def test_the_user_is_jovyan_without_any_capability() -> None:
    process = spec()["process"]
    assert process["user"] == {"uid": 1000, "gid": 100, "additionalGids": [100]}
    assert all(v == [] for v in process["capabilities"].values())
    assert set(process["capabilities"]) == {
        "bounding", "effective", "inheritable", "permitted", "ambient",
    }  # fmt: skip
    assert process["noNewPrivileges"] is True


def test_own_namespaces_for_everything() -> None:
    kinds = {n["type"] for n in spec()["linux"]["namespaces"]}
    assert kinds == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert "user" not in kinds  # an ext4 home cannot be mounted from inside a user namespace


def test_limits_without_swap_and_with_pids() -> None:
    resources = spec(cpu=0.5, pids=300)["linux"]["resources"]
    assert resources["memory"] == {"limit": 2 << 30, "swap": 2 << 30, "disableOOMKiller": False}
    assert resources["cpu"] == {"quota": 50_000, "period": 100_000}
    assert resources["pids"] == {"limit": 300}
    assert "unified" not in resources
    # The kernel's smallest quota is 1 ms: a tiny limit is raised to it, never to 0.
    assert spec(cpu=0.001)["linux"]["resources"]["cpu"]["quota"] == 1000


def test_oom_group_on_cgroup_v2() -> None:
    resources = spec(oom_group_v2=True)["linux"]["resources"]
    assert resources["unified"] == {"memory.oom.group": "1"}


def test_the_root_and_every_host_mount_are_read_only() -> None:
    s = spec()
    assert s["root"] == {"path": "rootfs", "readonly": True}
    again = mounts_at(s, "/work")
    assert again == [
        {"destination": "/work", "type": "bind", "source": "/work", "options": ["bind", "ro", "nosuid", "nodev"]}
    ]  # fmt: skip
    assert len(mounts_at(s, "/mnt/data")) == 1, "a mount point listed twice is bound once"
    # Fresh or hidden: the host's own are not carried over.
    for point in (
        "/proc",
        "/sys/fs/cgroup/memory",
        "/run/docker.sock",
        "/tmp/somewhere",
        "/dev/shm",
    ):
        assert all(m["type"] != "bind" or m["source"] != point for m in s["mounts"]), point


def test_hidden_and_private_folders() -> None:
    s = spec()
    for top in oci_spec.HIDDEN:
        (mount,) = mounts_at(s, top)
        assert mount["source"] == f"/w/masks{top}"
        assert "ro" in mount["options"]
    for tmp in oci_spec.PRIVATE_TMP:
        (mount,) = mounts_at(s, tmp)
        assert mount["type"] == "tmpfs"
    (cgroup,) = mounts_at(s, "/sys/fs/cgroup")
    assert cgroup["type"] == "cgroup"
    assert "ro" in cgroup["options"]


def test_only_hidden_or_private_paths_are_exposed_again() -> None:
    s = spec()
    assert mounts_at(s, "/root/.pyenv")[0]["options"][:2] == ["rbind", "ro"]
    assert mounts_at(s, "/tmp/venv")[0]["options"][:2] == ["rbind", "ro"]
    assert mounts_at(s, "/work/main/src") == [], "visible already, read-only"
    order = [m["destination"] for m in s["mounts"]]
    assert order.index("/root") < order.index("/root/.pyenv"), "exposed on top of the stand-in"


def test_home_socket_and_identity() -> None:
    s = spec()
    (home,) = mounts_at(s, oci_spec.HOME)
    assert (home["type"], home["source"]) == ("ext4", "/dev/loop7")
    (sock,) = mounts_at(s, oci_spec.SOCKET_DIR)
    assert sock["source"] == "/w/sock"
    assert mounts_at(s, "/etc/passwd")[0]["source"] == "/w/etc/passwd"
    passwd = oci_spec.identity_files()["passwd"]
    assert "jovyan:x:1000:100::/home/jovyan:" in passwd


def test_mount_points_are_made_only_inside_the_stand_ins() -> None:
    points = mount_points_to_make(["/root/.pyenv", "/tmp/venv", "/work/x"], socket_dir=True)
    assert points == ["/home/jovyan", "/root/.pyenv", "/run/hubprobe"]


def test_seccomp_refuses_new_user_namespaces() -> None:
    rules = spec()["linux"]["seccomp"]["syscalls"]
    unshare = next(r for r in rules if "unshare" in r["names"])
    assert unshare["args"][0]["value"] == 0x10000000
    assert any("bpf" in r["names"] for r in rules)
