"""A hub's profile, measured inside a user's server; and how it differs from a profile file.

A helper kernel in the user's server runs :data:`~hubprobe.hub.inside_code.LIMITS`
(its own cgroup, MEM_LIMIT and the rest, the home's size, the node's CPUs
and memory); the interface's default URL is where ``/user/NAME/`` sends a
browser. What cannot be seen from inside a server (the culler's timeouts, a
guarantee the hub does not export) is copied from a base profile, and its
source says so, so the file never passes a guess off as a measurement.
"""

from __future__ import annotations

import dataclasses
import json
import math
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hubprobe.errors import UsageError
from hubprobe.hub.inside_code import LIMITS, PRELUDE
from hubprobe.hub.meter import outputs_once
from hubprobe.jupyter.api import ServerAPI
from hubprobe.profiles import Profile, load_profile

__all__ = ["Measured", "compare", "measure", "profile_toml"]

#: The home's filesystem is smaller than its volume (ext4's journal and tables).
STORAGE_OVERHEAD = 0.10
NOT_MEASURED = "not measured"


@dataclasses.dataclass(frozen=True)
class Measured:
    url: str
    user: str
    date: str
    values: dict[str, Any]
    default_url: str | None


def _run(api: ServerAPI, code: str, timeout: float) -> dict[str, Any]:
    outputs = outputs_once(api, code, timeout=timeout)
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    errors = [o for o in outputs if o["output_type"] == "error"]
    if errors or not text.strip():
        why = f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else "no output"
        raise UsageError(f"the measuring kernel failed ({why})", "see the server's log")
    data: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # noqa: ARG002
        return None


def _default_url(api: ServerAPI) -> str | None:
    """Where the server sends a new session: its redirect from the base URL."""
    req = urllib.request.Request(f"{api.url}/", headers={"Authorization": f"token {api.token}"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=api.timeout):
            return None
    except urllib.error.HTTPError as exc:
        exc.close()
        location = exc.headers.get("Location")
        return None if location is None else location.split("?")[0]
    except OSError:
        return None


def measure(api: ServerAPI, hub_url: str, user: str, date: str, timeout: float = 60) -> Measured:
    values = _run(api, PRELUDE + "\n" + LIMITS, timeout)
    return Measured(url=hub_url, user=user, date=date, values=values, default_url=_default_url(api))


def _interface(default_url: str | None) -> str | None:
    if default_url is None:
        return None
    if default_url.rstrip("/").endswith("/lab"):
        return "jupyterlab"
    if default_url.rstrip("/").endswith("/tree"):
        return "notebook7"
    return None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value > 0 else None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return str(value)


def profile_toml(m: Measured, name: str, base: Profile) -> str:
    """A profile file of what was measured; the rest from ``base``, saying so."""
    v = m.values
    where = f"measured on {m.url} (user {m.user}) on {m.date}"
    taken = f"{NOT_MEASURED}: {{why}}; taken from profile {base.name}"
    values: dict[str, tuple[Any, str]] = {}

    def put(key: str, value: Any, source: str, fallback: Any, why: str) -> None:
        if value is None:
            values[key] = (fallback, taken.format(why=why))
        else:
            values[key] = (value, f"{where}: {source}")

    v1 = v.get("cgroup_version") == 1
    mem = "memory.limit_in_bytes" if v1 else "memory.max"
    put("memory.limit", None if v["memory_limit_bytes"] is None else str(v["memory_limit_bytes"]),
        f"cgroup v{v['cgroup_version']} {mem}", str(base.memory_limit_bytes),
        "the cgroup sets no memory limit")  # fmt: skip
    guarantee = _number(v.get("MEM_GUARANTEE"))
    put("memory.guarantee", None if guarantee is None else str(int(guarantee)),
        "MEM_GUARANTEE", str(base.memory_guarantee_bytes), "MEM_GUARANTEE is not set")  # fmt: skip
    swap = v.get("swap_bytes")
    if swap is None and v.get("node_swap_bytes") == 0:
        swap = 0  # no limit, but the node has no swap to give
    put("memory.swap", None if swap is None else str(swap),
        "swap limit of the cgroup, or the node's SwapTotal 0", "0", "no swap limit is readable")  # fmt: skip
    group = v.get("oom_group")
    if group is None:
        put("memory.oom_scope", "process",
            "cgroup v1 has no memory.oom.group: the kernel kills one process", None, "")  # fmt: skip
    else:
        put("memory.oom_scope", "container" if group else "process",
            f"memory.oom.group = {int(group)}", None, "")  # fmt: skip
    put("cpu.limit", v.get("cpu_limit"),
        "cgroup CPU quota / period", base.cpu_limit, "the cgroup sets no CPU quota")  # fmt: skip
    put("cpu.guarantee", _number(v.get("CPU_GUARANTEE")),
        "CPU_GUARANTEE", base.cpu_guarantee, "CPU_GUARANTEE is not set")  # fmt: skip
    put("storage.size", str(v["home_size_bytes"]),
        f"size of the filesystem holding {v['home']} (statvfs)", None, "")  # fmt: skip
    put("storage.per_user_quota", None, "", base.storage_per_user_quota,
        "a server cannot tell its own volume from a share of one")  # fmt: skip
    put("pids.limit", v.get("pids_limit"),
        "pids.max", base.pids_limit, "the cgroup sets no pids limit")  # fmt: skip
    put("node.cpus", v.get("node_cpus"), "os.cpu_count() in the kernel", base.node_cpus, "")
    put("node.memory", str(v["node_memory_bytes"]) if v.get("node_memory_bytes") else None,
        "MemTotal in /proc/meminfo", str(base.node_memory_bytes), "no /proc/meminfo")  # fmt: skip
    put("interface.default", _interface(m.default_url),
        f"/user/{m.user}/ redirects to {m.default_url}", base.interface,
        "the server's default URL was not recognised")  # fmt: skip
    for key, value in (("kernel_idle_seconds", base.kernel_idle_seconds),
                       ("server_idle_seconds", base.server_idle_seconds)):  # fmt: skip
        put(f"culling.{key}", None, "", value, "the hub's culler is not visible from a server")
    lines = [
        f"# Measured by hubprobe profile --hub {m.url} on {m.date}.",
        f'name = "{name}"',
        f"title = {json.dumps('Measured on ' + m.url)}",
        f"description = {json.dumps(f'The limits one user ({m.user}) gets on {m.url}, measured on {m.date}.')}",
    ]  # fmt: skip
    sections: dict[str, list[str]] = {}
    for key, (value, _) in values.items():
        section, _, field = key.partition(".")
        sections.setdefault(section, []).append(f"{field} = {_toml(value)}")
    for section, rows in sections.items():
        lines += ["", f"[{section}]", *rows]
    lines += ["", "[sources]"] + [f'"{k}" = {json.dumps(s)}' for k, (_, s) in values.items()]
    return "\n".join(lines) + "\n"


#: What --compare compares, with how each value is shown.
_COMPARED = {
    "memory.limit": "memory_limit_bytes",
    "memory.guarantee": "memory_guarantee_bytes",
    "memory.swap": "swap_bytes",
    "memory.oom_scope": "oom_scope",
    "cpu.limit": "cpu_limit",
    "cpu.guarantee": "cpu_guarantee",
    "storage.size": "storage_bytes",
    "pids.limit": "pids_limit",
    "node.cpus": "node_cpus",
    "node.memory": "node_memory_bytes",
    "interface.default": "interface",
}


def compare(measured: Profile, other: Profile) -> list[str]:
    """One line per measured value that differs from ``other``'s; values not measured are skipped.

    Storage matches when the measured filesystem is 90-100% of the profile's
    size: a volume's filesystem is always a little smaller than the volume.
    """
    from hubprobe.units import format_bytes

    lines = []
    for key, attr in _COMPARED.items():
        if measured.sources[key].startswith(NOT_MEASURED):
            continue
        got, want = getattr(measured, attr), getattr(other, attr)
        if key == "storage.size":
            same = (1 - STORAGE_OVERHEAD) * want <= got <= want
        else:
            same = got == want
        if not same:
            show = (lambda n: format_bytes(n, measured=True)) if attr.endswith("_bytes") else str
            lines.append(f"{key}: measured {show(got)}, {other.name} says {show(want)}")
    return lines


def load_measured(text: str, folder: Path, name: str) -> Profile:
    """Check a measured profile as any profile is checked (write it, load it)."""
    path = folder / f"{name}.toml"
    path.write_text(text)
    return load_profile(str(path))
