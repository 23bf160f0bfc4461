"""The kernel's interpreter: a second environment standing for the hub's image, made here."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest
from check_helpers import NOTEBOOKS, run_check

from hubprobe.check.environment import (
    KERNEL_NAME,
    choose_interpreter,
    imported_names,
    kernelspec_files,
    missing_module,
    worker_counts,
)
from hubprobe.errors import UsageError

NEEDS_ENV = NOTEBOOKS / "needs-env.ipynb"


def _venv(folder: Path, *, with_ipykernel: bool, hwtools: bool) -> Path:
    """A real venv. ipykernel comes from ours through a .pth (no download, same versions);
    ``hwtools`` is a module (with its dist-info) that only this venv has."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    lib = next((folder / "lib").glob("python3*/site-packages"))
    if with_ipykernel:
        (lib / "ours.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    if hwtools:
        (lib / "hwtools.py").write_text('def greeting():\n    return "hello from the course env"\n')
        info = lib / "hwtools-1.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hwtools\nVersion: 1.2\n")
        (info / "top_level.txt").write_text("hwtools\n")
        (info / "RECORD").write_text("hwtools.py,,\n")
    return folder


@pytest.fixture(scope="module")
def course_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("envs") / "course", with_ipykernel=True, hwtools=True)


def test_names_the_notebook_imports() -> None:
    sources = [
        "import numpy as np\nimport os, sys\nfrom sklearn.linear_model import Ridge",
        "%matplotlib inline\n# import notthis\nimport pandas.io as pio",
    ]
    assert imported_names(sources) == ["numpy", "os", "sys", "sklearn", "pandas"]
    assert missing_module("No module named 'datascience'") == "datascience"
    assert missing_module("No module named 'a.b'") == "a.b"


def test_an_interpreter_without_ipykernel_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    bare = _venv(tmp_path / "bare", with_ipykernel=False, hwtools=False)
    with pytest.raises(UsageError, match="has no ipykernel") as caught:
        choose_interpreter(None, str(bare), "python3")
    assert "pip install ipykernel" in str(caught.value)
    result = run_check(str(NEEDS_ENV), "--env", str(bare))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "has no ipykernel" in result.stderr
    for wrong, said in (("--env", "no such folder"), ("--python", "no such file")):
        result = run_check(str(NEEDS_ENV), wrong, str(tmp_path / "nowhere"))
        assert (result.returncode, said in result.stderr) == (2, True), result.stderr


def test_a_kernelspec_for_the_given_environment(course_env: Path) -> None:
    interp, note = choose_interpreter(None, str(course_env), "python3")
    assert note is None
    assert interp.kernel_name == KERNEL_NAME
    assert interp.python == str(course_env / "bin" / "python3")
    assert interp.prefix == course_env
    assert Path(sys.base_prefix) in interp.expose
    ((path, text),) = kernelspec_files(interp).items()
    assert path == f".local/share/jupyter/kernels/{KERNEL_NAME}/kernel.json"
    assert json.loads(text)["argv"][:3] == [interp.python, "-m", "ipykernel_launcher"]


@pytest.mark.sandbox
def test_a_module_only_in_the_course_env(
    tmp_path: Path, small_profile: Path, course_env: Path
) -> None:
    out = tmp_path / "r.json"
    base = [str(NEEDS_ENV), "--profile", str(small_profile), "--json", str(out)]
    ours = run_check(*base)
    assert ours.returncode == 5, ours.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert (nb["verdict"], nb["at_cell"]) == ("error", 2)
    assert nb["detail"] == "error at cell 2: ModuleNotFoundError: No module named 'hwtools'"
    (hint,) = [h for h in nb["hints"] if h["kind"] == "missing_module"]
    assert hint["cells"] == [2]
    assert f"no module named 'hwtools' in {sys.executable}" in hint["text"]

    theirs = run_check(*base, "--env", str(course_env))
    assert theirs.returncode == 0, theirs.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert nb["verdict"] == "fits"
    assert nb["kernel"].startswith(f"Python {sys.version.split()[0]} at {course_env}/bin/python3")
    assert "(--env)" in nb["kernel"]
    assert nb["packages"]["hwtools"] == "1.2"
    assert "numpy" in nb["packages"]


@pytest.mark.sandbox
def test_the_notebooks_own_kernelspec_is_honoured_where_it_exists(
    tmp_path: Path, small_profile: Path, course_env: Path
) -> None:
    share = tmp_path / "share"
    spec = share / "kernels" / "course-env" / "kernel.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({
        "argv": [str(course_env / "bin" / "python3"), "-m", "ipykernel_launcher",
                 "-f", "{connection_file}"],
        "display_name": "Course env", "language": "python",
    }))  # fmt: skip
    nb = json.loads(NEEDS_ENV.read_text())
    nb["metadata"]["kernelspec"] = {"name": "course-env", "display_name": "Course env",
                                    "language": "python"}  # fmt: skip
    (tmp_path / "hw").mkdir()
    named = tmp_path / "hw" / "needs-env.ipynb"
    named.write_text(json.dumps(nb))
    out = tmp_path / "r.json"
    args = [str(named), "--profile", str(small_profile), "--json", str(out)]
    found = run_check(*args, env={"JUPYTER_PATH": str(share)})
    assert found.returncode == 0, found.stderr
    report = json.loads(out.read_text())["notebooks"][0]
    assert "the notebook's kernelspec 'course-env'" in report["kernel"]
    assert report["packages"]["hwtools"] == "1.2"

    missing = run_check(*args)  # no such kernelspec here: hubprobe's own Python, said so
    assert missing.returncode == 5, missing.stderr
    report = json.loads(out.read_text())["notebooks"][0]
    assert any("names the kernel 'course-env', which does not exist here" in n
               for n in report["notes"])  # fmt: skip


def test_worker_counts_here_and_on_the_hub() -> None:
    cores = os.cpu_count() or 1
    w = worker_counts(4.0, 8, hub_cpus=False)
    assert (w.here, w.hub, w.hub_count_used) == (min(cores, 4), 4, False)
    assert (w.files, w.env) == ({}, {})
    if cores < 4:
        assert w.note.startswith(f"this machine has {cores} cores, fewer than the profile's 4 CPU")
    hub = worker_counts(4.0, 8, hub_cpus=True)
    assert hub.env == {"LOKY_MAX_CPU_COUNT": "4"}
    (startup,) = hub.files
    assert startup == ".ipython/profile_default/startup/00-hubprobe-hub-cpus.py"
    assert "cpu_count = lambda: 8" in hub.files[startup]
    assert worker_counts(1.0, 8, hub_cpus=False).note == ""


@pytest.mark.sandbox
@pytest.mark.skipif((os.cpu_count() or 1) >= 4, reason="needs fewer cores than DataHub's 4 CPUs")
def test_hub_cpus_starts_as_many_joblib_workers_as_the_hub(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    base = [str(NOTEBOOKS / "parallel.ipynb"), "--profile", "datahub", "--json", str(out)]
    here = run_check(*base)
    assert here.returncode == 0, here.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert nb["joblib_workers"] == {"here": os.cpu_count(), "hub": 4, "hub_count_used": False}
    assert any("fewer than the profile's 4 CPU limit" in n for n in nb["notes"])
    (hint,) = [h for h in nb["hints"] if h["kind"] == "n_jobs"]
    assert f"joblib started {os.cpu_count()} worker processes" in hint["text"]

    hub = run_check(*base, "--hub-cpus")
    assert hub.returncode == 0, hub.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert nb["joblib_workers"]["hub_count_used"] is True
    (hint,) = [h for h in nb["hints"] if h["kind"] == "n_jobs"]
    assert "joblib started 4 worker processes" in hint["text"]
