"""A whole-server OOM kill in JupyterLab, re-measured in Chromium against a fresh local hub.

The guide quotes probes/ui/whole-server-kill.json (written by tools/ui_probe.py);
this test runs the JupyterLab case again and checks that what a student sees
is still what the record says: the same dialog, no word about memory, the
other notebook's kernel gone too, a server again after the student's click,
and the unsaved edits kept and saved as recorded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import hubtools
import pytest
from hubtools import settle, write_profile

from hubprobe.hub.local import LocalHub
from hubprobe.hub.ui_probe import measure
from hubprobe.profiles import load_profile
from hubprobe.site import browser

RECORD = Path(__file__).resolve().parents[2] / "probes" / "ui" / "whole-server-kill.json"


@pytest.fixture(scope="module")
def lab_kill(
    hub_ready: None,  # noqa: ARG001  # skips where no hub can run
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    if os.geteuid() != 0:
        pytest.skip("the local hub's containers need root")
    why = browser.missing()
    if why:
        pytest.skip(why)
    recorded = json.loads(RECORD.read_text())["cases"]["jupyterlab"]
    swaps = {
        'limit = "2G"': f'limit = "{recorded["profile"]["memory_limit"]}"',
        'oom_scope = "process"': 'oom_scope = "container"',
    }
    path = write_profile(tmp_path_factory.mktemp("profiles"), "ui-kill", **swaps)
    profile = load_profile(str(path))
    assert profile.memory_limit_bytes == recorded["profile"]["memory_limit_bytes"]
    before = hubtools.count()
    with browser.chromium() as chromium, LocalHub(profile) as hub:
        found = measure(
            chromium, hub.url, hub.token, "student", "jupyterlab", profile.memory_limit_bytes,
            patience=60,
        )  # fmt: skip
    assert settle(before) == {}, "the hub or its containers left something behind"
    return found


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORD.read_text())["cases"]["jupyterlab"]
    return data


def test_the_whole_server_dies_and_the_dialog_is_the_recorded_one_with_no_word_of_memory(
    lab_kill: dict[str, Any], recorded: dict[str, Any]
) -> None:
    assert lab_kill["server_survived"] is False
    dialogs = lab_kill["dialogs_while_down"]
    assert dialogs, "no dialog while the server was down"
    first, then = dialogs[0], recorded["dialogs_while_down"][0]
    assert (first["title"], first["body"], first["buttons"]) == (
        then["title"],
        then["body"],
        then["buttons"],
    )
    words = " ".join(f"{d['title']} {d['body']}" for d in dialogs).lower()
    assert "memory" not in words
    assert "kernel" not in words  # it speaks of the server only


def test_the_other_notebooks_kernel_is_gone_too(lab_kill: dict[str, Any]) -> None:
    assert lab_kill["kernels_before"] == 2
    assert lab_kill["other_kernel_survived"] is False
    assert lab_kill["kernels_after"] == 0


def test_the_server_comes_back_only_after_the_student_acts(lab_kill: dict[str, Any]) -> None:
    way = lab_kill["way_back"]
    assert way["seconds_until_server_ready"] is not None
    assert lab_kill["seconds_until_hub_noticed"] is not None
    actions = [s["action"] for s in way["steps"] if "action" in s]
    assert actions[0] == "clicks Restart in the dialog"
    assert way["hub_restarted_it_by_itself"] in (False, None)  # None: the click sufficed
    assert "/lab" in way["steps"][-1]["shows"]["path"]  # JupyterLab again


def test_the_unsaved_edits_fare_as_recorded(
    lab_kill: dict[str, Any], recorded: dict[str, Any]
) -> None:
    for key in (
        "edits_in_editor_while_down",
        "edits_in_editor_after",
        "edits_on_disk_after_ctrl_s",
    ):
        assert lab_kill[key] == recorded[key], key
    # Nothing saved them by itself: no file in the new home until Ctrl+S.
    assert set(lab_kill["edits_on_disk_when_back"].values()) == {None}
    assert set(lab_kill["edits_on_disk_before_saving"].values()) == {False}
