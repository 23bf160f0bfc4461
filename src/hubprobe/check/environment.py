"""Which Python runs the assignment's kernel: hubprobe's own, one given, or the notebook's.

A hub runs a notebook in its image's environment, not in the one hubprobe
was installed into, and package versions change verdicts (one lecture is
killed at 4 GiB with pandas 2 and fits in 253 MiB with the 2022 stack). So
``--python PATH`` or ``--env DIR`` names the interpreter standing for the
hub's image; the server stays hubprobe's, and the kernel is started from a
kernelspec written into the seeded home, as a user-installed kernel would
be. Without either, the notebook's own kernelspec is honoured where a
kernelspec of that name exists here.

Everything is found out before a sandbox is made: a missing interpreter or
one without ipykernel is one line for the user, and nothing runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hubprobe.errors import UsageError

__all__ = [
    "KERNEL_NAME",
    "Interpreter",
    "Workers",
    "choose_interpreter",
    "imported_names",
    "kernelspec_files",
    "missing_module",
    "parse_versions",
    "versions_code",
    "worker_counts",
]

#: The kernelspec hubprobe writes into the home for a given interpreter.
KERNEL_NAME = "hubprobe-env"

# What an interpreter says about itself; run with -I so nothing of ours leaks in.
_ABOUT = """\
import importlib.util, json, sys
try:
    import importlib.metadata as md
    ipykernel = md.version("ipykernel") if importlib.util.find_spec("ipykernel") else None
except Exception:
    ipykernel = None
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix,
                  "base_prefix": sys.base_prefix, "version": sys.version.split()[0],
                  "ipykernel": ipykernel}))
"""


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """A Python that will run the kernel, as it described itself."""

    python: str  # the path the kernel's argv starts with
    prefix: Path
    base_prefix: Path
    version: str
    ipykernel: str
    #: How it was chosen, for the report: "hubprobe's own", "--python", "--env",
    #: "the notebook's kernelspec 'data100'".
    chosen_by: str
    #: The kernelspec to start; KERNEL_NAME when hubprobe writes one.
    kernel_name: str = "python3"
    #: A kernelspec's own kernel.json (argv, env, ...), when one is honoured.
    spec: Mapping[str, Any] | None = None

    @property
    def expose(self) -> tuple[Path, ...]:
        """What the sandbox must let the kernel read: the environment and, for a venv, its base."""
        return tuple(dict.fromkeys((self.prefix, self.base_prefix)))

    @property
    def own(self) -> bool:
        return self.chosen_by == "hubprobe's own"

    def describe(self) -> str:
        return (
            f"Python {self.version} at {self.python} ({self.chosen_by}), ipykernel {self.ipykernel}"
        )


def _about(python: str, what: str) -> dict[str, Any]:
    try:
        out = subprocess.run(
            [python, "-I", "-c", _ABOUT], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise UsageError(f"{what} {python}: cannot run it ({exc.strerror or exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise UsageError(f"{what} {python}: did not answer in 60 s") from exc
    lines = out.stdout.strip().splitlines()
    try:
        info: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        said = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"{what} {python}: not a working Python ({said[:120]})") from None
    return info


def _interpreter(python: str, what: str, chosen_by: str, **kw: Any) -> Interpreter:
    info = _about(python, what)
    if not info.get("ipykernel"):
        raise UsageError(
            f"{what} {python}: has no ipykernel, so no kernel can run there",
            f"install it there ({python} -m pip install ipykernel) and run again",
        )
    return Interpreter(
        python=python, prefix=Path(info["prefix"]), base_prefix=Path(info["base_prefix"]),
        version=str(info["version"]), ipykernel=str(info["ipykernel"]), chosen_by=chosen_by,
        **kw,
    )  # fmt: skip


def _env_python(env: Path) -> Path:
    for candidate in (env / "bin" / "python3", env / "bin" / "python", env / "python"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise UsageError(
        f"--env {env}: no bin/python in it",
        "give the folder of a venv or conda environment (the one holding bin/python)",
    )


def _notebook_spec(name: str) -> dict[str, Any] | None:
    """The kernelspec of that name as a server here would find it, or None."""
    if not name or name == "python3":
        return None
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:  # pragma: no cover - jupyter_client comes with hubprobe[probes]
        return None
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None
    return dict(spec.to_dict())


def choose_interpreter(
    python: str | None, env: str | None, notebook_kernel: str
) -> tuple[Interpreter, str | None]:
    """The kernel's interpreter, and a note for the report when the notebook's is not used.

    ``--python`` or ``--env`` wins; else a kernelspec named as the notebook's
    that exists here; else hubprobe's own Python (the ``python3`` kernel).
    """
    if python is not None:
        path = Path(python).expanduser()
        if not path.exists():
            raise UsageError(f"--python {python}: no such file", "give the path of a python binary")
        return _interpreter(
            str(path.absolute()), "--python", "--python", kernel_name=KERNEL_NAME
        ), None
    if env is not None:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise UsageError(f"--env {env}: no such folder", "give a venv or conda environment")
        exe = _env_python(folder.absolute())
        return _interpreter(str(exe), "--env", "--env", kernel_name=KERNEL_NAME), None
    spec = _notebook_spec(notebook_kernel)
    if spec is not None and spec.get("argv"):
        argv0 = str(spec["argv"][0])
        what = f"the notebook's kernelspec {notebook_kernel!r}"
        return _interpreter(argv0, what, what, kernel_name=notebook_kernel, spec=spec), None
    note = None
    if notebook_kernel and notebook_kernel != "python3":
        note = (
            f"the notebook names the kernel {notebook_kernel!r}, which does not exist here; it ran "
            "in hubprobe's own Python (give --python or --env for the hub's environment)"
        )
    return _own(), note


def _own() -> Interpreter:
    """hubprobe's own Python: what the ``python3`` kernel of its server runs (no subprocess)."""
    import importlib.metadata as md

    try:
        ipykernel = md.version("ipykernel")
    except md.PackageNotFoundError:
        raise UsageError(
            "hubprobe's Python has no ipykernel, so no kernel can run",
            "install hubprobe[probes], or give --python or --env",
        ) from None
    return Interpreter(
        python=sys.executable, prefix=Path(sys.prefix), base_prefix=Path(sys.base_prefix),
        version=sys.version.split()[0], ipykernel=ipykernel, chosen_by="hubprobe's own",
    )  # fmt: skip


def kernelspec_files(interp: Interpreter) -> dict[str, str]:
    """Files for the seeded home: the kernelspec that starts ``interp``, if one is needed."""
    if interp.own:
        return {}
    if interp.spec is not None:
        spec = dict(interp.spec)
    else:
        spec = {
            "argv": [interp.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python {interp.version} ({interp.python})",
            "language": "python",
        }
    # Under the user's data dir, which the server inside finds from its HOME.
    return {f".local/share/jupyter/kernels/{interp.kernel_name}/kernel.json": json.dumps(spec)}


@dataclasses.dataclass(frozen=True)
class Workers:
    """How many workers joblib's ``n_jobs=-1`` starts here and on the hub, and which ran."""

    here: int
    hub: int
    hub_count_used: bool
    #: What the kernel gets to count the hub's cores: IPython startup file, variables.
    files: Mapping[str, str]
    env: Mapping[str, str]
    note: str


# Loaded by IPython before the first cell: os.cpu_count() and the affinity read the node's
# cores, as in the hub's pod; loky then takes the least of them, the cgroup's quota and
# LOKY_MAX_CPU_COUNT, as on the hub. LOKY_MAX_CPU_COUNT alone can only lower the count.
_HUB_CPUS = """\
# hubprobe check --hub-cpus: count the hub node's cores, as the hub's pod does.
import os as _hubprobe_os
_hubprobe_os.cpu_count = lambda: {cpus}
if hasattr(_hubprobe_os, "sched_getaffinity"):
    _hubprobe_os.sched_getaffinity = lambda pid=0: set(range({cpus}))
del _hubprobe_os
"""


def worker_counts(cpu_limit: float, node_cpus: int, hub_cpus: bool) -> Workers:
    """joblib's ``n_jobs=-1`` count, here and on the hub: the least of cores and the quota.

    ``hub_cpus``: make the kernel count the hub node's cores (through an IPython
    startup file in the seeded home, and ``LOKY_MAX_CPU_COUNT``), so parallel
    cells start as many workers, and take as much memory, as on the hub.
    """
    quota = max(math.ceil(cpu_limit), 1)
    here = min(os.cpu_count() or 1, quota)
    hub = min(node_cpus, quota)
    if hub_cpus:
        note = (
            f"joblib's worker count: the hub's (--hub-cpus): the kernel counts the node's "
            f"{node_cpus} cores, so n_jobs=-1 starts {hub} workers, as on the hub"
        )
        return Workers(
            here, hub, True,
            {".ipython/profile_default/startup/00-hubprobe-hub-cpus.py":
             _HUB_CPUS.format(cpus=node_cpus)},
            {"LOKY_MAX_CPU_COUNT": str(hub)}, note,
        )  # fmt: skip
    note = ""
    if here < hub:
        note = (
            f"this machine has {os.cpu_count()} cores, fewer than the profile's "
            f"{cpu_limit:g} CPU limit: n_jobs=-1 starts {here} joblib workers here and {hub} on "
            "the hub, so the memory of parallel cells is understated; --hub-cpus runs with the "
            "hub's count"
        )
    return Workers(here, hub, False, {}, {}, note)


_IMPORT = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([\w., ]+))")


def imported_names(sources: Iterable[str]) -> list[str]:
    """Top-level module names the notebook imports, in order (magics and comments skipped)."""
    names: dict[str, None] = {}
    for source in sources:
        for line in source.splitlines():
            m = _IMPORT.match(line)
            if m is None:
                continue
            if m[1]:
                names[m[1]] = None
            else:
                for part in m[2].split(","):
                    word = part.strip().split(" ")[0].split(".")[0]
                    if word.isidentifier():
                        names[word] = None
    return list(names)


def versions_code(names: Iterable[str]) -> str:
    """Run silently at the end: the kernel's interpreter and the versions of what was imported.

    Only modules the notebook imported and the kernel really loaded; their
    distributions' versions through importlib.metadata. Stdlib has none.
    """
    wanted = sorted(set(names))
    return f"""\
def __hubprobe_versions(wanted={wanted!r}):
    import importlib.metadata as md, json, sys
    dists = md.packages_distributions()
    found = {{}}
    for name in wanted:
        if name not in sys.modules or name in getattr(sys, "stdlib_module_names", ()):
            continue
        for dist in dists.get(name, []):
            try:
                found[dist] = md.version(dist)
            except Exception:
                pass
    print(json.dumps({{"executable": sys.executable, "python": sys.version.split()[0],
                      "packages": found}}))
__hubprobe_versions()
del __hubprobe_versions
"""


def parse_versions(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    return data


_NO_MODULE = re.compile(r"No module named '([\w.]+)'")


def missing_module(evalue: str) -> str | None:
    """``datascience`` from "No module named 'datascience'"."""
    m = _NO_MODULE.search(evalue)
    return m[1] if m else None
