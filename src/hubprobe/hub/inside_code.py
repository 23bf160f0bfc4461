"""The small programs hubprobe runs in a kernel on a hub, to read the session's own cgroup.

They run where hubprobe is not installed (a hub's image), so they are plain
Python with no imports beyond the standard library: :data:`PRELUDE` defines
the readers once per helper kernel; :data:`LIMITS`, :data:`READING` and :data:`LINKS` each
print one JSON line. They read what ``hubprobe limits`` reads
(:mod:`hubprobe.cgroup.session`), for cgroup v1 and v2, inside a cgroup
namespace (paths ``/``) or not.
"""

from __future__ import annotations

__all__ = ["LIMITS", "LINKS", "PRELUDE", "READING"]

PRELUDE = r"""
import json as _json, os as _os, time as _time

def _hp_read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None

def _hp_int(text, unlimited=2**62):
    if text is None or text == "max":
        return None
    value = int(text)
    return None if value >= unlimited else value

def _hp_dirs():
    own = {}
    for line in (_hp_read("/proc/self/cgroup") or "").splitlines():
        _id, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else [""]):
            own[c] = path
    if "memory" not in own:
        path = own.get("", "/")
        base = "/sys/fs/cgroup" + ("" if path == "/" else path)
        if not _os.path.exists(base + "/memory.max"):
            base = "/sys/fs/cgroup"
        return 2, {"memory": base, "cpu": base, "cpuacct": base, "pids": base}
    dirs = {}
    for c in ("memory", "cpu", "cpuacct", "pids"):
        for name in (c, "cpu,cpuacct" if c in ("cpu", "cpuacct") else c):
            for cand in ("/sys/fs/cgroup/%s%s" % (name, own.get(c, "/")), "/sys/fs/cgroup/" + name):
                if _os.path.isdir(cand) and c not in dirs:
                    dirs[c] = cand.rstrip("/")
    return 1, dirs

_HP_VERSION, _HP_DIRS = _hp_dirs()

def _hp_flat(text):
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value.strip())
    return out

def _hp_reading():
    d = _HP_DIRS
    if _HP_VERSION == 1:
        mem = d.get("memory", "")
        usage = _hp_int(_hp_read(mem + "/memory.usage_in_bytes")) or 0
        peak = _hp_int(_hp_read(mem + "/memory.max_usage_in_bytes")) or 0
        kills = _hp_flat(_hp_read(mem + "/memory.oom_control")).get("oom_kill", 0)
        cpu_ns = _hp_int(_hp_read(d.get("cpuacct", "") + "/cpuacct.usage")) or 0
        throttled_ns = _hp_flat(_hp_read(d.get("cpu", "") + "/cpu.stat")).get("throttled_time", 0)
        cpu, throttled = cpu_ns / 1e9, throttled_ns / 1e9
    else:
        mem = d["memory"]
        usage = _hp_int(_hp_read(mem + "/memory.current")) or 0
        peak = _hp_int(_hp_read(mem + "/memory.peak")) or 0
        kills = _hp_flat(_hp_read(mem + "/memory.events")).get("oom_kill", 0)
        stat = _hp_flat(_hp_read(mem + "/cpu.stat"))
        cpu, throttled = stat.get("usage_usec", 0) / 1e6, stat.get("throttled_usec", 0) / 1e6
    return {"memory_bytes": usage, "peak_memory_bytes": peak, "oom_kills": kills,
            "cpu_seconds": cpu, "throttled_seconds": throttled}

def _hp_limits():
    d = _HP_DIRS
    out = {"cgroup_version": _HP_VERSION, "oom_group": None}
    if _HP_VERSION == 1:
        mem, cpu = d.get("memory", ""), d.get("cpu", "")
        out["memory_limit_bytes"] = _hp_int(_hp_read(mem + "/memory.limit_in_bytes"))
        memsw = _hp_int(_hp_read(mem + "/memory.memsw.limit_in_bytes"))
        limit = out["memory_limit_bytes"]
        out["swap_bytes"] = None if memsw is None else max(memsw - (limit or 0), 0)
        quota = _hp_int(_hp_read(cpu + "/cpu.cfs_quota_us"))
        period = _hp_int(_hp_read(cpu + "/cpu.cfs_period_us")) or 100000
        out["cpu_limit"] = None if quota is None or quota < 0 else quota / period
    else:
        mem = d["memory"]
        out["memory_limit_bytes"] = _hp_int(_hp_read(mem + "/memory.max"))
        out["swap_bytes"] = _hp_int(_hp_read(mem + "/memory.swap.max"))
        group = _hp_read(mem + "/memory.oom.group")
        out["oom_group"] = None if group is None else group == "1"
        quota, _, period = (_hp_read(mem + "/cpu.max") or "max 100000").partition(" ")
        out["cpu_limit"] = None if quota == "max" else int(quota) / int(period or 100000)
    out["pids_limit"] = _hp_int(_hp_read(d.get("pids", "") + "/pids.max"))
    home = _os.environ.get("HOME", _os.getcwd())
    st = _os.statvfs(home)
    out.update(home=home, home_size_bytes=st.f_blocks * st.f_frsize,
               home_free_bytes=st.f_bavail * st.f_frsize)
    for key in ("MEM_LIMIT", "MEM_GUARANTEE", "CPU_LIMIT", "CPU_GUARANTEE"):
        out[key] = _os.environ.get(key)
    out["node_cpus"] = _os.cpu_count()
    meminfo = {}
    for line in (_hp_read("/proc/meminfo") or "").splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            meminfo[parts[0]] = int(parts[1])
    out["node_memory_bytes"] = meminfo.get("MemTotal", 0) * 1024
    out["node_swap_bytes"] = meminfo.get("SwapTotal", 0) * 1024
    return out
"""

#: Links in the current folder to the cgroup files a reading needs (names: ``cgroup-KEY``),
#: so that the server's contents API can read them with no kernel running.
LINKS = r"""
def _hp_links():
    d, names = _HP_DIRS, {}
    if _HP_VERSION == 1:
        wanted = {"usage": d.get("memory", "") + "/memory.usage_in_bytes",
                  "peak": d.get("memory", "") + "/memory.max_usage_in_bytes",
                  "oom": d.get("memory", "") + "/memory.oom_control",
                  "cpu": d.get("cpuacct", "") + "/cpuacct.usage",
                  "cpustat": d.get("cpu", "") + "/cpu.stat"}
    else:
        wanted = {"usage": d["memory"] + "/memory.current", "peak": d["memory"] + "/memory.peak",
                  "oom": d["memory"] + "/memory.events", "cpustat": d["memory"] + "/cpu.stat"}
    for key, path in wanted.items():
        if _hp_read(path) is not None:
            _os.symlink(path, "cgroup-" + key)
            names[key] = "cgroup-" + key
    return {"version": _HP_VERSION, "files": names}

print(_json.dumps(_hp_links()))
"""

LIMITS = "print(_json.dumps(_hp_limits()))"
READING = "print(_json.dumps(_hp_reading()))"
