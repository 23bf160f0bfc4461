"""Bad hub input, each through the command line: one line, the documented exit code, nothing left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hubtools
import pytest
from hubtools import settle

from hubprobe.errors import ExitCode
from hubprobe.hub.api import check_url, read_token
from hubprobe.hub.local import LocalHub, free_port
from hubprobe.site.browser import serve_dir


def profile_cmd(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTERHUB_API_TOKEN"}
    if token is not None:
        env["JUPYTERHUB_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "hubprobe", "profile", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str], code: ExitCode, *words: str) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert done.stdout == ""


@pytest.mark.parametrize("url", ["datahub.berkeley.edu", "ftp://hub.example", "http://"])
def test_a_bad_url_is_a_usage_error(url: str) -> None:
    one_line(profile_cmd("--hub", url, token="x" * 32), ExitCode.USAGE, "not a hub URL")


def test_no_token_is_a_usage_error() -> None:
    one_line(profile_cmd("--hub", "http://127.0.0.1:9"), ExitCode.USAGE, "JUPYTERHUB_API_TOKEN")


def test_an_empty_token_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("\n")
    done = profile_cmd("--hub", "http://127.0.0.1:9", "--token-file", str(tmp_path / "t"))
    one_line(done, ExitCode.USAGE, "is empty")


def test_a_refused_connection() -> None:
    done = profile_cmd("--hub", f"http://127.0.0.1:{free_port()}", token="x" * 32)
    one_line(done, ExitCode.HUB_UNREACHABLE, "Connection refused")


def test_something_that_is_not_a_hub(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>a web page</p>")
    with serve_dir(tmp_path) as url:
        done = profile_cmd("--hub", url, token="x" * 32)
    one_line(done, ExitCode.HUB_UNREACHABLE, "answered HTTP 404")


def test_a_wrong_token(local_hub: LocalHub) -> None:
    before = hubtools.count()
    done = profile_cmd("--hub", local_hub.url, "--user", "student", token="0" * 64)
    one_line(done, ExitCode.HUB_AUTH, "refused the token")
    assert settle(before) == {}


def test_a_user_the_hub_does_not_know(local_hub: LocalHub) -> None:
    before = hubtools.count()
    done = profile_cmd("--hub", local_hub.url, "--user", "nobody", "--token-file",
                       str(local_hub.token_file))  # fmt: skip
    one_line(done, ExitCode.HUB_NO_SERVER, "no user 'nobody'")
    assert settle(before) == {}


def test_check_url_keeps_the_base() -> None:
    assert check_url("https://hub.example/") == "https://hub.example"
    assert check_url("https://hub.example/hub/") == "https://hub.example"
    assert check_url("http://127.0.0.1:8000/prefix") == "http://127.0.0.1:8000/prefix"


def test_the_token_file_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "from-env")
    (tmp_path / "t").write_text("from-file\n")
    assert read_token(str(tmp_path / "t")) == "from-file"
    assert read_token(None) == "from-env"
