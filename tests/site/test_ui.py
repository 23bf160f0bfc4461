"""``<!-- ui: ... -->``: recorded browser texts into pages (pure), and the committed record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hubprobe.site.ui import UI_SHORTCODE, UiRefError, load_ui, render_ui, ui_value

ROOT = Path(__file__).resolve().parents[2]
DATA = {
    "kill": {
        "date": "2026-12-03T14:00:00+00:00",
        "chromium": "156.0",
        "cases": {
            "lab": {
                "dialogs": [
                    {"title": "Server unavailable", "body": "Your server at /user/a/ is\nnot <b>"},
                ],
                "seconds_until_first_dialog": 4.63,
                "server_survived": False,
                "seconds_until_hub_noticed": None,
                "kernels_before": 2,
                "memory": ["Mem: 1 / 512 MB", "x"],
            }
        },
    }
}


def text(html_span: str) -> str:
    """The text inside the span ui_value returns."""
    assert html_span.startswith('<span class="hp-ui" ')
    assert html_span.endswith("</span>")
    return html_span.split(">", 1)[1].rsplit("<", 1)[0]


def test_a_text_is_quoted_on_one_line_escaped_with_where_it_was_measured() -> None:
    out = ui_value("kill.cases.lab.dialogs.0.body", DATA)
    assert text(out) == "Your server at /user/a/ is not &lt;b&gt;"
    assert 'title="measured in Chromium 156.0 on 2026-12-03"' in out
    assert 'data-ui="kill.cases.lab.dialogs.0.body"' in out
    assert "\n" not in out


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("seconds_until_first_dialog", "4.6 s"),
        ("server_survived", "no"),
        ("seconds_until_hub_noticed", "none"),
        ("kernels_before", "2"),
        ("memory", "Mem: 1 / 512 MB, x"),
        ("dialogs.0.title", "Server unavailable"),
    ],
)
def test_values_are_written_as_measured_figures_are(path: str, expected: str) -> None:
    assert text(ui_value(f"kill.cases.lab.{path}", DATA)) == expected


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("nothing.cases", "no probes/ui/nothing.json (recorded: kill)"),
        ("kill", "name a value inside kill"),
        ("kill.cases.lab.dialog", "kill.cases.lab has no 'dialog' (it has: dialogs, seconds_"),
        ("kill.cases.lab.dialogs.1", "kill.cases.lab.dialogs has no '1' (it has: 1 items)"),
        ("kill.cases.lab.kernels_before.x", "has no 'x' (it has: 2)"),
        ("kill.cases.lab", "a group of values"),
        ("kill.cases.lab.dialogs", "a group of values"),
    ],
)
def test_a_ref_that_names_no_single_value_says_what_is_there(ref: str, says: str) -> None:
    with pytest.raises(UiRefError, match=r"^ui ") as err:
        ui_value(ref, DATA)
    assert says in str(err.value)


def test_render_replaces_known_refs_and_reports_the_rest() -> None:
    problems: list[str] = []
    page = (
        "Seen: <!-- ui: kill.cases.lab.dialogs.0.title -->, after"
        " <!--ui:kill.cases.lab.seconds_until_first_dialog-->; <!-- ui: kill.nope -->"
    )
    out = render_ui(page, DATA, problems)
    assert ">Server unavailable</span>, after" in out
    assert ">4.6 s</span>;" in out
    assert out.endswith("<!-- ui: kill.nope -->")  # left as it was, and reported
    assert problems == ["ui kill.nope: kill has no 'nope' (it has: date, chromium, cases)"]


def test_other_shortcodes_are_not_ours() -> None:
    problems: list[str] = []
    page = "<!-- figure: oom.x --> <!-- claim: a --> `<!-- ui -->`"
    assert render_ui(page, DATA, problems) == page
    assert problems == []


def test_load_reads_every_record_in_a_folder(tmp_path: Path) -> None:
    assert load_ui(tmp_path / "missing") == {}
    (tmp_path / "kill.json").write_text(json.dumps(DATA["kill"]))
    (tmp_path / "notes.txt").write_text("not a record")
    assert load_ui(tmp_path) == DATA


# -- the committed record, and the pages that quote it -------------------------------------


def committed() -> dict[str, Any]:
    return load_ui(ROOT / "probes" / "ui")


def test_the_committed_record_says_where_and_with_what_it_was_measured() -> None:
    record = committed()["whole-server-kill"]
    assert isinstance(record, dict)
    for key in ("date", "backend", "chromium", "versions", "notes", "cases"):
        assert record.get(key), key
    for package in ("jupyterlab", "notebook", "jupyterhub", "jupyter_server"):
        assert record["versions"][package], package
    assert set(record["cases"]) == {"jupyterlab", "notebook7", "jupyterlab_process"}
    for name, case in record["cases"].items():
        assert case["profile"]["memory_limit_bytes"] > 0, name
        assert case["profile"]["oom_scope"] in ("process", "container"), name


def test_every_ui_shortcode_in_the_guide_names_a_recorded_value() -> None:
    data = committed()
    refs = [
        (page.relative_to(ROOT), m.group(1))
        for page in sorted((ROOT / "docs").rglob("*.md"))
        for m in UI_SHORTCODE.finditer(page.read_text())
    ]
    assert refs, "no page quotes the UI probe yet"
    bad = []
    for page, ref in refs:
        try:
            ui_value(ref, data)
        except UiRefError as exc:
            bad.append(f"{page}: {exc}")
    assert bad == []


def test_what_the_guide_says_in_its_own_words_is_what_was_recorded() -> None:
    """The sentences around the quotes (no dialog, nothing saved by itself, ...) match the record."""
    cases = committed()["whole-server-kill"]["cases"]
    lab, nb7, alone = cases["jupyterlab"], cases["notebook7"], cases["jupyterlab_process"]
    for case in (lab, nb7):  # silent-oom-kill.md#whole-server
        assert case["server_survived"] is False
        assert case["other_kernel_survived"] is False
        assert case["kernels_after"] == 0
        assert case["way_back"]["hub_restarted_it_by_itself"] is not True
        assert case["way_back"]["seconds_until_server_ready"] is not None
        assert (
            case["reload_after_hub_noticed"]["heading"]
            == lab["reload_after_hub_noticed"]["heading"]
        )
        assert case["reload_right_after_kill"]["status"] == 503
        assert all(case["edits_in_editor_while_down"].values())
        assert all(case["edits_in_editor_after"].values())
        assert set(case["edits_on_disk_when_back"].values()) == {None}  # nothing saved itself
        assert not any(case["edits_on_disk_before_saving"].values())
        assert all(case["edits_on_disk_after_ctrl_s"].values())
    words = " ".join(f"{d['title']} {d['body']}" for d in lab["dialogs_while_down"]).lower()
    assert words
    assert "memory" not in words
    assert "kernel" not in words
    assert nb7["dialogs_while_down"] == []
    assert lab["way_back"]["back_in"] == "a new browser tab"
    steps = lab["way_back"]["steps"]
    assert steps[0]["action"] == "clicks Restart in the dialog"
    if steps[0]["seconds"] < lab["seconds_until_hub_noticed"]:  # "clicked before the hub ..."
        assert steps[1]["shows"]["heading"] == lab["reload_right_after_kill"]["heading"]
    assert alone["server_survived"] is True  # #whole-server-contrast
    assert alone["other_kernel_survived"] is True
    assert alone["shown"][0]["kind"] == "dialog"
    indicator = nb7["memory_indicator"]  # memory-indicator.md#notebook7
    assert indicator["default"] == []
    assert indicator["top_bar_enabled"]


@pytest.mark.parametrize(
    ("anchor", "path"),
    [
        ("server-killed-for-memory", "jupyterlab.dialogs_while_down.0.title"),
        ("service-unavailable", "jupyterlab.reload_right_after_kill.heading"),
    ],
)
def test_piazza_headings_quote_the_recorded_texts(anchor: str, path: str) -> None:
    """A heading cannot hold a shortcode: its quoted text must be the recorded one."""
    page = (ROOT / "docs" / "reference" / "piazza-replies.md").read_text()
    heading = next(line for line in page.splitlines() if line.endswith(f"{{#{anchor}}}"))
    quoted = heading.split('"')[1]
    assert text(ui_value(f"whole-server-kill.cases.{path}", committed())) == quoted
