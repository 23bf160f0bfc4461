"""Hub profiles: the numbers one JupyterHub deployment gives each user.

A profile is a TOML file in the repo's ``profiles/`` folder (format in
``profiles/README.md``). The guide and the sandbox read limits from a profile
instead of hard-coding one hub's numbers, and every number must carry a
source, so a stale or guessed value is visible in the file that holds it.

Validation is strict (unknown keys are errors) because a typo such as
``limt = "4G"`` would otherwise leave a default in place without a word.
"""

from __future__ import annotations

import difflib
import importlib.resources
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubprobe.errors import UsageError
from hubprobe.units import parse_bytes

__all__ = [
    "DEFAULT_PROFILE",
    "Profile",
    "ProfileError",
    "list_profiles",
    "load_profile",
    "profiles_dir",
]

#: Today's DataHub: the hub most of the guide's readers teach on.
DEFAULT_PROFILE = "datahub"
#: Where the wheel carries the repository's profiles/ (see pyproject.toml).
_SHIPPED = "profiles_data"

# Each key with an example value; examples are shown in errors so a fix can be pasted.
_TOP = {"name": '"datahub"', "title": '"UC Berkeley DataHub"', "description": '"one line"'}
_SECTIONS: dict[str, dict[str, str]] = {
    "memory": {"limit": '"2G"', "guarantee": '"1G"', "swap": '"0"', "oom_scope": '"process"'},
    "cpu": {"limit": "1.0", "guarantee": "0.05"},
    "storage": {"size": '"10G"', "per_user_quota": "true"},
    "pids": {"limit": "1024"},
    "node": {"cpus": "8", "memory": '"64G"'},
    "interface": {"default": '"jupyterlab"'},
    "culling": {"kernel_idle_seconds": "1800", "server_idle_seconds": "1800"},
}
_EXAMPLES = {**_TOP, **{f"{s}.{k}": v for s, keys in _SECTIONS.items() for k, v in keys.items()}}
# Every value a profile sets needs a line in [sources] saying where it comes from.
_SOURCED = tuple(key for key in _EXAMPLES if "." in key)
_ALLOWED_TOP = (*_TOP, *_SECTIONS, "sources", "environment")
#: The one optional table: variables the hub sets in the server (each needs a source).
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_OPTIONAL = ("environment",)
#: What JupyterHub sets itself; a profile may not override it.
_SPAWNER_ENV = ("MEM_LIMIT", "MEM_GUARANTEE", "CPU_LIMIT", "CPU_GUARANTEE")
_OOM_SCOPES = ("process", "container")
_INTERFACES = ("jupyterlab", "notebook7", "classic")


class ProfileError(UsageError):
    """A profile that cannot be used; ``str()`` is one line: file, key, problem, fix."""

    def __init__(self, file: str | Path, key: str, problem: str, fix: str = "") -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: {key}: {problem}", fix)


@dataclass(frozen=True)
class Profile:
    """One hub's per-user resources, in bytes, CPUs and seconds."""

    name: str
    title: str
    description: str
    path: Path
    memory_limit_bytes: int
    memory_guarantee_bytes: int
    swap_bytes: int
    oom_scope: str
    cpu_limit: float
    cpu_guarantee: float
    storage_bytes: int
    #: Whether the home is a volume of its own (writes fail at ``storage_bytes``)
    #: or a share of one volume with no per-user quota (they fail when it is full).
    storage_per_user_quota: bool
    #: Processes and threads at once (a pod's pids limit).
    pids_limit: int
    node_cpus: int
    node_memory_bytes: int
    interface: str
    kernel_idle_seconds: int
    server_idle_seconds: int
    # A dict cannot be hashed; leave it out of the frozen dataclass's hash.
    sources: dict[str, str] = field(hash=False)
    #: Variables the hub sets in every server (Aalto: the BLAS thread counts).
    environment: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def blas_threads_setting(self) -> int:
        """The BLAS thread count the hub's variables ask for; 0 where they set none."""
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            value = self.environment.get(name, "")
            if value.isdigit():
                return int(value)
        return 0

    def env(self) -> dict[str, str]:
        """The variables JupyterHub's Spawner.get_env exports (``str()`` of each trait)."""
        return {
            "MEM_LIMIT": str(self.memory_limit_bytes),
            "MEM_GUARANTEE": str(self.memory_guarantee_bytes),
            "CPU_LIMIT": str(self.cpu_limit),
            "CPU_GUARANTEE": str(self.cpu_guarantee),
        } | self.environment


def profiles_dir() -> Path:
    """The folder holding ``<name>.toml`` profiles.

    ``HUBPROBE_PROFILES`` (or ``--profiles DIR``, which sets it) wins;
    otherwise the profiles shipped inside the package, read through
    :mod:`importlib.resources`, so an installed hubprobe works from any
    folder. In a source checkout (an editable install) the package has no
    copy and the repository's own ``profiles/`` is that folder.
    """
    override = os.environ.get("HUBPROBE_PROFILES")
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            fix = "point it at a folder of .toml profiles"
            raise ProfileError(path, "HUBPROBE_PROFILES", "not a directory", fix)
        return path
    shipped = importlib.resources.files("hubprobe") / _SHIPPED
    if isinstance(shipped, Path) and (shipped / f"{DEFAULT_PROFILE}.toml").is_file():
        return shipped
    checkout = Path(__file__).resolve().parents[2] / "profiles"
    if (checkout / f"{DEFAULT_PROFILE}.toml").is_file():
        return checkout
    problem = f"this installation of hubprobe has no {_SHIPPED}/ folder with {DEFAULT_PROFILE}.toml"
    fix = "reinstall hubprobe from its wheel, or set HUBPROBE_PROFILES to a folder of profiles"
    raise ProfileError(str(shipped), "HUBPROBE_PROFILES", problem, fix)


def list_profiles() -> list[str]:
    """Names of the profiles in ``profiles_dir()``, sorted."""
    return sorted(p.stem for p in profiles_dir().glob("*.toml") if p.is_file())


def load_profile(name_or_path: str) -> Profile:
    """Load and validate a profile by name (``datahub``) or path (``x/y.toml``)."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(path, "(file)", "no such file", "check the path")
    else:
        available = ", ".join(list_profiles()) or "(none)"
        path = profiles_dir() / f"{name_or_path}.toml"
        if not name_or_path or not path.is_file():
            problem = f"no profile named {name_or_path!r}"
            raise ProfileError(path, "(file)", problem, f"available: {available}")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, exc) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(path, "(file)", f"cannot read: {exc}", "check the file") from exc
    return _Reader(path, data).profile()


def _syntax_error(path: Path, exc: tomllib.TOMLDecodeError) -> ProfileError:
    # Python 3.11's TOMLDecodeError has no lineno attribute; the position is
    # only in the message, as "(at line 3, column 9)".
    message = str(exc)
    where = re.search(r"\(at line (\d+), column (\d+)\)", message)
    problem = re.sub(r"\s*\(at [^)]*\)", "", message)
    if where is None:
        return ProfileError(path, "(toml)", f"TOML syntax error: {problem}", "fix the TOML syntax")
    line, column = where.groups()
    problem = f"TOML syntax error at column {column}: {problem}"
    return ProfileError(path, f"line {line}", problem, "fix that line")


class _Reader:
    """Checks one parsed TOML document; raises ProfileError at the first problem."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def fail(self, key: str, problem: str, fix: str = "") -> ProfileError:
        return ProfileError(self.path, key, problem, fix)

    def profile(self) -> Profile:
        self.check_keys(self.data, "", _ALLOWED_TOP)
        for section, keys in _SECTIONS.items():
            self.check_keys(self.table(section), f"{section}.", tuple(keys))
        sources = self.sources()
        name = self.text("name")
        if name != self.path.stem:
            fix = f'set name = "{self.path.stem}" or rename the file'
            raise self.fail("name", f"{name!r} does not match the file {self.path.name!r}", fix)
        mem_limit = self.size("memory.limit")
        mem_guarantee = self.size("memory.guarantee")
        self.not_above("memory.guarantee", mem_guarantee, "memory.limit", mem_limit)
        swap = self.size("memory.swap", positive=False)
        if swap != 0:
            problem = f"{self.raw('memory.swap')!r}: hubprobe models hubs without swap"
            raise self.fail("memory.swap", problem, 'set swap = "0"')
        cpu_limit = self.cpus("cpu.limit")
        cpu_guarantee = self.cpus("cpu.guarantee")
        self.not_above("cpu.guarantee", cpu_guarantee, "cpu.limit", cpu_limit)
        node_cpus = self.integer("node.cpus", minimum=1)
        self.not_below("node.cpus", node_cpus, "cpu.limit", cpu_limit)
        node_memory = self.size("node.memory")
        self.not_below("node.memory", node_memory, "memory.limit", mem_limit)
        return Profile(
            name=name,
            title=self.text("title"),
            description=self.text("description"),
            path=self.path.resolve(),
            memory_limit_bytes=mem_limit,
            memory_guarantee_bytes=mem_guarantee,
            swap_bytes=swap,
            oom_scope=self.choice("memory.oom_scope", _OOM_SCOPES),
            cpu_limit=cpu_limit,
            cpu_guarantee=cpu_guarantee,
            storage_bytes=self.size("storage.size"),
            storage_per_user_quota=self.boolean("storage.per_user_quota"),
            pids_limit=self.integer("pids.limit", minimum=16),
            node_cpus=node_cpus,
            node_memory_bytes=node_memory,
            interface=self.choice("interface.default", _INTERFACES),
            kernel_idle_seconds=self.integer("culling.kernel_idle_seconds", minimum=0),
            server_idle_seconds=self.integer("culling.server_idle_seconds", minimum=0),
            sources=sources,
            environment=self.environment(),
        )

    # -- structure ---------------------------------------------------------

    def check_keys(self, table: dict[str, Any], prefix: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            dotted = f"{prefix}{key}"
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail(dotted, "unknown key", f"{hint}allowed: {', '.join(allowed)}")
        for key in allowed:
            dotted = f"{prefix}{key}"
            if key not in table and dotted not in _OPTIONAL:
                where = f"under [{prefix[:-1]}]" if prefix else "at the top of the file"
                fix = f"add {key} = {_EXAMPLES.get(dotted)} {where}"
                if key in _SECTIONS or key == "sources":
                    fix = f"add a [{key}] table"
                raise self.fail(dotted, "missing key", fix)

    def table(self, section: str) -> dict[str, Any]:
        value = self.data[section]
        if not isinstance(value, dict):
            raise self.fail(section, f"expected a [{section}] table, got {_kind(value)}")
        return value

    def raw(self, dotted: str) -> Any:
        section, _, key = dotted.rpartition(".")
        return self.table(section)[key] if section else self.data[key]

    def sources(self) -> dict[str, str]:
        table = self.table("sources")
        for key, value in table.items():
            label = f'sources."{key}"'
            if isinstance(value, dict):
                # Unquoted `memory.limit = ...` makes a nested table in TOML.
                label = f"sources.{key}"
                raise self.fail(label, "is a table", 'quote dotted keys: "memory.limit" = "..."')
            if key not in _SOURCED and not key.startswith("environment."):
                raise self.fail(label, "source for an unknown key", f"use: {', '.join(_SOURCED)}")
            if not isinstance(value, str) or not value.strip():
                raise self.fail(
                    label, f"empty or not a string: {value!r}", "say where it comes from"
                )
        for key in _SOURCED:
            label = f'sources."{key}"'
            if key not in table:
                fix = f'add "{key}" = "<repo> <file> @ <commit>" (or a document) under [sources]'
                raise self.fail(label, "missing source", fix)
        for key in self.environment():
            label = f'sources."environment.{key}"'
            if f"environment.{key}" not in table:
                raise self.fail(label, "missing source", "say which config sets this variable")
        for key in table:
            if key.startswith("environment.") and key[12:] not in self.environment():
                label = f'sources."{key}"'
                raise self.fail(label, "source for a variable the profile does not set")
        return dict(table)

    def environment(self) -> dict[str, str]:
        value = self.data.get("environment", {})
        if not isinstance(value, dict):
            raise self.fail("environment", f"expected an [environment] table, got {_kind(value)}")
        for key, item in value.items():
            label = f"environment.{key}"
            if not _ENV_NAME.match(key):
                raise self.fail(label, "not a variable name", "use capitals, digits and _")
            if key in _SPAWNER_ENV:
                problem = "JupyterHub sets this itself from the limits"
                raise self.fail(label, problem, "remove it; set the limit instead")
            if not isinstance(item, str):
                raise self.fail(label, f"expected a string, got {_kind(item)}", f'{key} = "4"')
        return dict(value)

    # -- values ------------------------------------------------------------

    def wrong_type(self, key: str, wanted: str, value: object) -> ProfileError:
        return self.fail(key, f"expected {wanted}, got {_kind(value)}", f"e.g. {_EXAMPLES[key]}")

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            raise self.wrong_type(key, "a non-empty string", value)
        if "\n" in value:
            raise self.fail(key, "spans several lines", "keep it to one line")
        return value

    def size(self, key: str, *, positive: bool = True) -> int:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.wrong_type(key, "a quoted size string", value)
        try:
            size = parse_bytes(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from exc
        if positive and size <= 0:
            raise self.fail(key, f"{value!r} is zero", f"give a size > 0, e.g. {_EXAMPLES[key]}")
        return size

    def cpus(self, key: str) -> float:
        value = self.raw(key)
        # bool is an int subclass in Python; TOML `true` must not pass as 1 CPU.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.wrong_type(key, "a number of CPUs", value)
        if not math.isfinite(value) or value <= 0:
            raise self.fail(key, f"{value!r} is not a positive number", "give a number > 0")
        return float(value)

    def integer(self, key: str, *, minimum: int) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong_type(key, "a whole number", value)
        if value < minimum:
            raise self.fail(key, f"{value} is below {minimum}", f"give a whole number >= {minimum}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.wrong_type(key, "true or false", value)
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(key)
        if value not in allowed:
            shown = ", ".join(f'"{a}"' for a in allowed)
            raise self.fail(key, f"{value!r} is not an allowed value", f"use one of {shown}")
        return str(value)

    def not_above(self, key: str, value: float, bound_key: str, bound: float) -> None:
        if value > bound:
            problem = f"{self.raw(key)!r} is more than {bound_key} = {self.raw(bound_key)!r}"
            raise self.fail(key, problem, f"lower {key} or raise {bound_key}")

    def not_below(self, key: str, value: float, bound_key: str, bound: float) -> None:
        if value < bound:
            problem = f"{self.raw(key)!r} is less than {bound_key} = {self.raw(bound_key)!r}"
            raise self.fail(key, problem, f"raise {key} or lower {bound_key}")


def _kind(value: object) -> str:
    """Describe a TOML value for an error: type name and the value itself."""
    return f"{type(value).__name__} {value!r}"
