"""The package as a new user gets it: the built wheel in a fresh venv, run from an empty folder.

Nothing of the checkout is on the path: the profiles must come from the
package itself, and ``check`` must run a notebook with only what the wheel
and its dependencies installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FITS = ROOT / "tests" / "check" / "fits.ipynb"


def _run(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    # A clean environment: no variable of the test run's own venv or checkout leaks in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("HUBPROBE_PROFILES", None)
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the venv's hubprobe, an empty folder to run it in)."""
    base = tmp_path_factory.mktemp("wheel")
    dist, venv, empty = base / "dist", base / "venv", base / "empty"
    empty.mkdir()
    built = _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], base)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("hubprobe-*.whl")
    made = _run([sys.executable, "-m", "venv", str(venv)], base)
    assert made.returncode == 0, made.stderr
    pip = _run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[probes]"], base)
    assert pip.returncode == 0, pip.stderr[-2000:]
    yield venv / "bin" / "hubprobe", empty
    shutil.rmtree(base, ignore_errors=True)


def test_version_from_an_empty_folder(installed: tuple[Path, Path]) -> None:
    exe, empty = installed
    result = _run([str(exe), "--version"], empty)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hubprobe ")


def test_limits_json_and_doctor_from_an_empty_folder(installed: tuple[Path, Path]) -> None:
    exe, empty = installed
    limits = _run([str(exe), "limits", "--json"], empty)
    assert limits.returncode == 0, limits.stderr
    assert json.loads(limits.stdout)["command"] == "limits"
    doctor = _run([str(exe), "doctor"], empty)
    assert doctor.returncode in (0, 1), doctor.stderr
    assert "cgroup1" in doctor.stdout
    help_text = _run([str(exe), "check", "--help"], empty).stdout
    assert "aalto, curriculum-guide, data100, data8, datahub, dsmlp" in help_text, (
        "the shipped profiles"
    )


def test_the_wheel_ships_the_profiles(installed: tuple[Path, Path]) -> None:
    exe, empty = installed
    code = "from hubprobe.profiles import profiles_dir; print(profiles_dir())"
    where = _run([str(exe.with_name("python")), "-c", code], empty)
    assert where.returncode == 0, where.stderr
    shipped = Path(where.stdout.strip())
    assert "site-packages" in shipped.parts
    repo = sorted(p.name for p in (ROOT / "profiles").glob("*.toml"))
    assert sorted(p.name for p in shipped.glob("*.toml")) == repo


@pytest.mark.sandbox
def test_check_from_an_empty_folder(installed: tuple[Path, Path]) -> None:
    exe, empty = installed
    shutil.copy(FITS, empty / "homework.ipynb")
    result = _run([str(exe), "check", "homework.ipynb", "--json", "report.json"], empty)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((empty / "report.json").read_text())
    assert report["notebooks"][0]["verdict"] == "fits"
