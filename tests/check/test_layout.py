"""What is copied into the home: a course repository, so that ``../data`` reads work."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from check_helpers import NOTEBOOKS, run_check

from hubprobe.check.layout import git_files, layout_for
from hubprobe.errors import UsageError

COURSE = NOTEBOOKS / "course"
LAB = Path("labs/lab01/lab01.ipynb")
GiB = 2**30


def _copy(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    return course


def test_the_root_is_the_git_top_else_the_notebooks_folder(tmp_path: Path) -> None:
    course = _copy(tmp_path)
    alone = layout_for(course / LAB, None, GiB)
    assert (alone.root, alone.chosen_by, alone.kernel_path) == (
        (course / LAB).parent, "the notebook's folder", "",
    )  # fmt: skip
    given = layout_for(course / LAB, str(course), GiB)
    assert (given.root, given.chosen_by, given.kernel_path) == (course, "--root", "labs/lab01")
    assert sorted(given.files) == ["README.md", "data/rain.csv", "labs/lab01/lab01.ipynb"]
    subprocess.run(["git", "init", "-q", str(course)], check=True)
    (course / ".gitignore").write_text("venv/\n")
    (course / "venv").mkdir()
    (course / "venv" / "big.bin").write_bytes(b"x" * 1000)
    found = layout_for(course / LAB, None, GiB)
    assert (found.root, found.chosen_by, found.kernel_path) == (
        course, "git work tree", "labs/lab01",
    )  # fmt: skip
    # What a clone would hold (untracked but not ignored included), not the ignored venv.
    assert git_files(course) is not None
    assert "venv/big.bin" not in found.files
    assert "data/rain.csv" in found.files


@pytest.mark.parametrize(
    ("root", "message"),
    [("elsewhere", "no such folder"), ("other", "is not inside it")],
)
def test_a_root_that_cannot_be_is_one_line(tmp_path: Path, root: str, message: str) -> None:
    course = _copy(tmp_path)
    (tmp_path / "other").mkdir()
    with pytest.raises(UsageError, match=message):
        layout_for(course / LAB, str(tmp_path / root), GiB)


def test_the_copy_is_checked_against_the_home(tmp_path: Path) -> None:
    course = _copy(tmp_path)
    with pytest.raises(UsageError, match=r"holds .* more than the profile's 4 KiB home"):
        layout_for(course / LAB, str(course), 4096)


@pytest.mark.sandbox
def test_a_notebook_reading_dotdot_data_runs_inside_its_repository(
    tmp_path: Path, small_profile: Path
) -> None:
    course = _copy(tmp_path)
    out = tmp_path / "r.json"
    base = [str(course / LAB), "--profile", str(small_profile), "--json", str(out)]
    alone = run_check(*base)
    assert alone.returncode == 5, alone.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert (nb["verdict"], nb["at_cell"]) == ("error", 2)
    assert "FileNotFoundError" in nb["detail"]
    assert "../../data/rain.csv" in nb["detail"]

    rooted = run_check(*base, "--root", str(course))
    assert rooted.returncode == 0, rooted.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert (nb["verdict"], nb["kernel_cwd"]) == ("fits", "labs/lab01")
    assert nb["copied"].startswith(f"{course} (")
    assert "--root" in nb["copied"]

    subprocess.run(["git", "init", "-q", str(course)], check=True)
    in_git = run_check(*base)
    assert in_git.returncode == 0, in_git.stderr
    nb = json.loads(out.read_text())["notebooks"][0]
    assert nb["verdict"] == "fits"
    assert "git work tree" in nb["copied"]
