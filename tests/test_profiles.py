"""Hub profiles: the four shipped ones, and one-line errors for bad files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubprobe.profiles import (
    DEFAULT_PROFILE,
    Profile,
    ProfileError,
    list_profiles,
    load_profile,
    profiles_dir,
)

GiB = 2**30
MiB = 2**20
SHIPPED = ["aalto", "curriculum-guide", "data100", "data8", "datahub", "dsmlp"]
REPO_PROFILES = Path(__file__).resolve().parents[1] / "profiles"


@pytest.fixture(autouse=True)
def _repo_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must not depend on where pytest is started from.
    monkeypatch.setenv("HUBPROBE_PROFILES", str(REPO_PROFILES))


def test_shipped_profiles_are_listed() -> None:
    assert list_profiles() == SHIPPED
    assert DEFAULT_PROFILE in list_profiles()


# name: (mem limit, mem guarantee, cpu limit, cpu guarantee)
EXPECTED = {
    "curriculum-guide": (2 * GiB, 1 * GiB, 1.0, 0.05),
    "datahub": (1 * GiB, 512 * MiB, 4.0, 0.05),
    "data8": (1 * GiB, 1 * GiB, 1.0, 0.05),
    "data100": (4 * GiB, 4 * GiB, 4.0, 0.05),
    "aalto": (5 * GiB, 512 * MiB, 4.0, 0.1),
    "dsmlp": (4 * GiB, 2 * GiB, 2.0, 1.0),
}
BERKELEY = ("datahub", "data8", "data100")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_values(name: str) -> None:
    p = load_profile(name)
    mem_limit, mem_guarantee, cpu_limit, cpu_guarantee = EXPECTED[name]
    assert p.name == name
    assert p.path == REPO_PROFILES / f"{name}.toml"
    assert (p.memory_limit_bytes, p.memory_guarantee_bytes) == (mem_limit, mem_guarantee)
    assert (p.cpu_limit, p.cpu_guarantee) == (cpu_limit, cpu_guarantee)
    assert p.swap_bytes == 0
    assert p.storage_bytes == 10 * GiB
    assert (p.node_cpus, p.node_memory_bytes) == (8, 64 * GiB)
    assert p.interface == ("notebook7" if name == "data8" else "jupyterlab")
    assert len(p.sources) == 14 + len(p.environment)
    assert all(s.strip() for s in p.sources.values())
    # Guessed or inferred values must say so where they are recorded.
    if name in BERKELEY:
        assert p.oom_scope == "container"
        assert "Inferred" in p.sources["memory.oom_scope"]
        assert "#117793" in p.sources["memory.oom_scope"]
        assert (p.kernel_idle_seconds, p.server_idle_seconds) == (1800, 1800)
        assert p.storage_per_user_quota is False
    elif name == "dsmlp":
        assert p.oom_scope == "container"
        assert "504" in p.sources["memory.oom_scope"]
    else:
        assert p.oom_scope == "process"
        assert "ssumption" in p.sources["memory.oom_scope"]
    # No hub here sets a pids limit: the value is hubprobe's own, and says so.
    assert p.pids_limit == 1024
    assert "hubprobe safety default" in p.sources["pids.limit"]


def test_the_default_is_todays_datahub() -> None:
    assert DEFAULT_PROFILE == "datahub"


def test_aalto_sets_the_blas_threads_to_its_cpu_limit() -> None:
    p = load_profile("aalto")
    assert p.blas_threads_setting == int(p.cpu_limit) == 4
    assert p.env()["OPENBLAS_NUM_THREADS"] == "4"
    assert p.env()["MEM_LIMIT"] == str(5 * GiB)
    assert "jupyterhub-aalto" in p.sources["environment.OMP_NUM_THREADS"]
    assert load_profile("datahub").blas_threads_setting == 0


def test_seed_profile_says_where_guarantees_come_from() -> None:
    p = load_profile("curriculum-guide")
    assert "technical-details.md" in p.sources["memory.limit"]
    assert "gives none" in p.sources["memory.guarantee"]
    assert "gives none" in p.sources["cpu.guarantee"]
    assert "no per-user quota" in p.sources["storage.size"]


def test_data100_cpu_is_the_hub_wide_default() -> None:
    assert "hub-wide default" in load_profile("data100").sources["cpu.limit"]


def test_env_matches_spawner() -> None:
    assert load_profile("curriculum-guide").env() == {
        "MEM_LIMIT": "2147483648",
        "MEM_GUARANTEE": "1073741824",
        "CPU_LIMIT": "1.0",
        "CPU_GUARANTEE": "0.05",
    }
    assert load_profile("datahub").env()["CPU_LIMIT"] == "4.0"


def test_profile_is_frozen_and_hashable() -> None:
    p = load_profile("data8")
    assert isinstance(p, Profile)
    with pytest.raises(AttributeError):
        p.name = "x"  # type: ignore[misc]
    assert hash(p) == hash(load_profile("data8"))


def test_load_by_path() -> None:
    p = load_profile(str(REPO_PROFILES / "datahub.toml"))
    assert p.name == "datahub"


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("stanford")
    message = str(info.value)
    assert "stanford" in message
    for name in SHIPPED:
        assert name in message


def test_override_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myhub.toml").write_text(_good("myhub"))
    monkeypatch.setenv("HUBPROBE_PROFILES", str(tmp_path))
    assert profiles_dir() == tmp_path
    assert list_profiles() == ["myhub"]
    assert load_profile("myhub").memory_limit_bytes == 2 * GiB


def test_override_dir_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBPROBE_PROFILES", str(tmp_path / "nope"))
    with pytest.raises(ProfileError, match="HUBPROBE_PROFILES"):
        profiles_dir()


def test_a_profiles_folder_in_the_working_directory_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A course repository may have a profiles/ of its own: only --profiles picks it.
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "curriculum-guide.toml").write_text("not a profile")
    monkeypatch.delenv("HUBPROBE_PROFILES")
    monkeypatch.chdir(tmp_path)
    assert profiles_dir().resolve() == REPO_PROFILES


def test_default_dir_found_from_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # From an unrelated cwd the walk up from the module's own file finds it.
    monkeypatch.delenv("HUBPROBE_PROFILES")
    monkeypatch.chdir(tmp_path)
    assert profiles_dir().resolve() == REPO_PROFILES


# -- bad files ---------------------------------------------------------------

SOURCED = [
    "memory.limit",
    "memory.guarantee",
    "memory.swap",
    "memory.oom_scope",
    "cpu.limit",
    "cpu.guarantee",
    "storage.size",
    "storage.per_user_quota",
    "pids.limit",
    "node.cpus",
    "node.memory",
    "interface.default",
    "culling.kernel_idle_seconds",
    "culling.server_idle_seconds",
]

VALUES = {
    "memory.limit": '"2G"',
    "memory.guarantee": '"1G"',
    "memory.swap": '"0"',
    "memory.oom_scope": '"process"',
    "cpu.limit": "1.0",
    "cpu.guarantee": "0.05",
    "storage.size": '"10G"',
    "storage.per_user_quota": "true",
    "pids.limit": "1024",
    "node.cpus": "8",
    "node.memory": '"64G"',
    "interface.default": '"jupyterlab"',
    "culling.kernel_idle_seconds": "1800",
    "culling.server_idle_seconds": "1800",
}


def _good(name: str = "hub", **changes: str | None) -> str:
    """A valid profile; changes map 'section.key' to new TOML text, None to drop."""
    top = {"name": f'"{name}"', "title": '"A hub"', "description": '"One line."'}
    values = {**top, **VALUES}
    sources = {key: f'"test {key}"' for key in SOURCED}
    for arg, text in changes.items():
        dotted = arg.replace("__", ".")
        table = sources if dotted.startswith("sources.") else values
        key = dotted.removeprefix("sources.")
        if text is None:
            table.pop(key, None)
        else:
            table[key] = text
    lines = [f"{k} = {v}" for k, v in values.items() if "." not in k]
    for section in ("memory", "cpu", "storage", "pids", "node", "interface", "culling"):
        lines.append(f"[{section}]")
        for k, v in values.items():
            if k.startswith(section + "."):
                lines.append(f"{k.split('.', 1)[1]} = {v}")
    lines.append("[sources]")
    lines.extend(f'"{k}" = {v}' for k, v in sources.items())
    return "\n".join(lines) + "\n"


def _error(tmp_path: Path, text: str, name: str = "hub") -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(_good())
    p = load_profile(str(path))
    assert p.memory_limit_bytes == 2 * GiB
    assert p.sources["memory.limit"] == "test memory.limit"


@pytest.mark.parametrize(
    ("changes", "key", "says"),
    [
        ({"memory__limt": '"2G"'}, "memory.limt", "unknown key"),
        ({"colour": '"red"'}, "colour", "unknown key"),
        ({"memory__limit": None}, "memory.limit", "missing key"),
        ({"title": None}, "title", "missing key"),
        ({"cpu__limit": '"one"'}, "cpu.limit", "expected a number"),
        ({"cpu__limit": "true"}, "cpu.limit", "expected a number"),
        ({"node__cpus": "8.0"}, "node.cpus", "whole number"),
        ({"culling__kernel_idle_seconds": '"30m"'}, "culling.kernel_idle_seconds", "whole"),
        ({"culling__server_idle_seconds": "-1"}, "culling.server_idle_seconds", "below 0"),
        ({"memory__limit": '"2GB"'}, "memory.limit", "'2G'"),
        ({"memory__limit": "2147483648"}, "memory.limit", "quoted size string"),
        ({"memory__limit": '"-1G"'}, "memory.limit", "negative"),
        ({"memory__limit": '"0"'}, "memory.limit", "zero"),
        ({"storage__size": '"0G"'}, "storage.size", "zero"),
        ({"cpu__limit": "0.0"}, "cpu.limit", "positive"),
        ({"cpu__guarantee": "-0.5"}, "cpu.guarantee", "positive"),
        ({"cpu__limit": "nan"}, "cpu.limit", "positive"),
        ({"memory__guarantee": '"3G"'}, "memory.guarantee", "more than memory.limit"),
        ({"cpu__guarantee": "2.0"}, "cpu.guarantee", "more than cpu.limit"),
        ({"node__cpus": "0"}, "node.cpus", "below 1"),
        ({"cpu__limit": "16.0", "cpu__guarantee": "1.0"}, "node.cpus", "less than cpu.limit"),
        ({"node__memory": '"1G"'}, "node.memory", "less than memory.limit"),
        ({"memory__swap": '"1G"'}, "memory.swap", "without swap"),
        ({"memory__oom_scope": '"kernel"'}, "memory.oom_scope", '"process", "container"'),
        (
            {"interface__default": '"lab"'},
            "interface.default",
            '"jupyterlab", "notebook7", "classic"',
        ),
        ({"description": '"""two\nlines"""'}, "description", "one line"),
        ({"sources__memory.limit": None}, "memory.limit", "missing source"),
        ({"sources__culling.kernel_idle_seconds": None}, "culling.kernel_idle_seconds", "missing"),
        ({"sources__memory.limt": '"x"'}, "memory.limt", "unknown key"),
        ({"sources__cpu.limit": '""'}, "cpu.limit", "not a string"),
    ],
)
def test_error_names_file_and_key(
    tmp_path: Path, changes: dict[str, str | None], key: str, says: str
) -> None:
    message = _error(tmp_path, _good(**changes))
    assert f": {key}" in message or f'"{key}"' in message
    assert says in message


def test_unknown_section(tmp_path: Path) -> None:
    message = _error(tmp_path, _good() + "[gpu]\ncount = 1\n")
    assert ": gpu: unknown key" in message


def test_unquoted_dotted_source_key(tmp_path: Path) -> None:
    text = _good().replace('"memory.limit" = ', "memory.limit = ")
    message = _error(tmp_path, text)
    assert "sources.memory" in message
    assert "quote" in message


def test_name_must_match_file(tmp_path: Path) -> None:
    message = _error(tmp_path, _good("other"))
    assert ": name: " in message
    assert 'name = "hub"' in message


def test_section_must_be_table(tmp_path: Path) -> None:
    text = 'storage = "10G"\n' + _good().replace(
        '[storage]\nsize = "10G"\nper_user_quota = true\n', ""
    )
    message = _error(tmp_path, text)
    assert ": storage: " in message
    assert "table" in message


def test_toml_syntax_error_gives_line(tmp_path: Path) -> None:
    text = _good().replace('limit = "2G"', 'limit = "2G', 1)
    message = _error(tmp_path, text)
    bad_line = text.splitlines().index('limit = "2G') + 1
    assert re.search(rf": line {bad_line}: TOML syntax error", message)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "no such file" in message
    assert "\n" not in message


def test_error_parts_are_attributes(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(_good(cpu__limit='"one"'))
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    err = info.value
    assert (err.file, err.key) == (str(path), "cpu.limit")
    assert str(err) == f"{err.file}: {err.key}: {err.problem}; {err.fix}"


def test_quota_must_be_a_boolean(tmp_path: Path) -> None:
    message = _error(tmp_path, _good(storage__per_user_quota='"yes"'))
    assert "storage.per_user_quota: expected true or false" in message


def _with_environment(text: str, env: str, sources: str) -> str:
    head, _, tail = text.partition("[sources]")
    return f"{head}[environment]\n{env}\n[sources]{tail}{sources}\n"


def test_environment_variables_need_a_source(tmp_path: Path) -> None:
    good = _with_environment(
        _good(), 'OMP_NUM_THREADS = "4"', '"environment.OMP_NUM_THREADS" = "a config"'
    )
    path = tmp_path / "hub.toml"
    path.write_text(good)
    p = load_profile(str(path))
    assert p.environment == {"OMP_NUM_THREADS": "4"}
    assert p.env()["OMP_NUM_THREADS"] == "4"
    assert p.blas_threads_setting == 4
    missing = _error(tmp_path, _with_environment(_good(), 'OMP_NUM_THREADS = "4"', ""))
    assert 'sources."environment.OMP_NUM_THREADS": missing source' in missing


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ('MEM_LIMIT = "1"', "JupyterHub sets this itself"),
        ('lower = "1"', "not a variable name"),
        ("OMP_NUM_THREADS = 4", "expected a string"),
    ],
)
def test_bad_environment(tmp_path: Path, env: str, problem: str) -> None:
    name = env.split(" ", maxsplit=1)[0]
    text = _with_environment(_good(), env, f'"environment.{name}" = "a config"')
    assert problem in _error(tmp_path, text)


def test_a_source_for_a_variable_not_set(tmp_path: Path) -> None:
    text = _good(**{"sources__environment.X": '"a config"'})
    assert "source for a variable the profile does not set" in _error(tmp_path, text)
