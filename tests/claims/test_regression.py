"""The notebook regression check: what it masks, what it must still catch."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from pytest_notebook.notebook import config_from_metadata
from pytest_notebook.post_processors import coalesce_streams

from hubprobe.claims.regression import notebook_diff
from hubprobe.probe import FIGURES_MIME

PROBES = Path(__file__).resolve().parents[2] / "probes"

#: A mask as a probe cell declares it: only the measured MiB figure after "peak ".
PEAK_MASK = {"diff_replace": [["/outputs/*/text", r"(peak )\d+( MiB)", r"\1<MiB>\2"]]}


def _nb(*outputs: dict[str, Any], nbreg: dict[str, Any] | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    if nbreg is not None:
        cell.metadata["nbreg"] = nbreg
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("m"), cell])


def _out(text: str) -> dict[str, Any]:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _error(ename: str) -> dict[str, Any]:
    return nbformat.v4.new_output("error", ename=ename, evalue="boom", traceback=["tb"])


def _figures(text: str) -> dict[str, Any]:
    return nbformat.v4.new_output("display_data", data={FIGURES_MIME: {"n": 1}, "text/plain": text})


def test_a_changed_count_fails_with_a_readable_diff() -> None:
    diff = notebook_diff(_nb(_out("restarts: 5\n")), _nb(_out("restarts: 6\n")))
    assert "-  restarts: 5" in diff
    assert "+  restarts: 6" in diff
    assert "/cells/1/outputs/0/text" in diff
    assert "\x1b[" not in diff, "no colour codes in a failure message"


@pytest.mark.parametrize(
    ("committed", "fresh"),
    [
        ("kernel: restarting\n", "kernel: dead\n"),
        ("variables survived: False\n", "variables survived: True\n"),
        ("kernel still listed by the server: False\n", "kernel still listed by the server: True\n"),
    ],
)
def test_a_changed_status_fails(committed: str, fresh: str) -> None:
    assert notebook_diff(_nb(_out(committed)), _nb(_out(fresh)))


def test_a_changed_figure_fails() -> None:
    committed = _nb(_figures("oom_kills_in_loop = 6\nlast_status = 'dead'"))
    fresh = _nb(_figures("oom_kills_in_loop = 5\nlast_status = 'dead'"))
    assert "oom_kills_in_loop = 5" in notebook_diff(committed, fresh)


def test_a_different_error_name_fails() -> None:
    diff = notebook_diff(
        _nb(_out("ok\n"), _error("MemoryError")), _nb(_out("ok\n"), _error("KeyError"))
    )
    assert "MemoryError" in diff
    assert "KeyError" in diff


def test_a_new_error_fails() -> None:
    assert notebook_diff(_nb(_out("ok\n")), _nb(_out("ok\n"), _error("MemoryError")))


def test_a_missing_output_fails() -> None:
    committed = _nb(_out("ok\n"), _figures("kernel_gone = True"))
    assert "deleted" in notebook_diff(committed, _nb(_out("ok\n")))
    assert notebook_diff(_nb(_out("ok\n")), _nb())


def test_a_measured_value_inside_its_cells_mask_passes() -> None:
    committed = _nb(_out("peak 193 MiB, 3 restarts\n"), nbreg=PEAK_MASK)
    fresh = _nb(_out("peak 207 MiB, 3 restarts\n"), nbreg=PEAK_MASK)
    assert notebook_diff(committed, fresh) == ""


def test_outside_its_mask_the_same_cell_is_compared() -> None:
    committed = _nb(_out("peak 193 MiB, 3 restarts\n"), nbreg=PEAK_MASK)
    assert "4 restarts" in notebook_diff(committed, _nb(_out("peak 207 MiB, 4 restarts\n")))
    # The mask is the cell's own: the same line in a cell without it is compared whole.
    assert notebook_diff(_nb(_out("peak 193 MiB\n")), _nb(_out("peak 207 MiB\n")))


@pytest.mark.parametrize(
    ("committed", "fresh"),
    [
        ("<object at 0x7f3a2c1e9d50>\n", "<object at 0x7f11d0a2b3c0>\n"),
        (
            "kernel 8045366f-4044-4f61-8c64-8b8a97a022e0\n",
            "kernel 11111111-2222-3333-4444-555555555555\n",
        ),
        ("home /tmp/hubprobe-123-run-ab12/home\n", "home /tmp/hubprobe-456-run-cd34/home\n"),
        (
            "File /work/main/.venv/lib/python3.11/site-packages/numpy/core.py\n",
            "File /work/h-x/.nox/tests-3-12/lib/python3.12/site-packages/numpy/core.py\n",
        ),
        ("bin /work/.nox/tests/bin/x\n", "bin /work/.nox/probes-3-11/bin/x\n"),
        ("\x1b[0;31mMemoryError\x1b[0m\n", "MemoryError\n"),
    ],
    ids=["address", "uuid", "tmp-path", "venv", "nox-env", "ansi"],
)
def test_global_volatile_values_pass(committed: str, fresh: str) -> None:
    assert notebook_diff(_nb(_out(committed)), _nb(_out(fresh))) == ""


def test_prints_split_into_other_messages_pass() -> None:
    assert notebook_diff(_nb(_out("a\nb\n")), _nb(_out("a\n"), _out("b\n"))) == ""


def test_execution_counts_ids_metadata_and_figures_json_are_left_out() -> None:
    committed, fresh = _nb(_figures("n = 1")), _nb(_figures("n = 1"))
    cell = fresh.cells[1]
    cell.execution_count, cell.id = 7, "other-id"
    cell.metadata["hubprobe"] = {"wall_seconds": 9.9}
    cell.outputs[0].data[FIGURES_MIME] = {"n": 1.0}  # the text/plain beside it is compared
    fresh.metadata["language_info"] = {"name": "python", "version": "3.12"}
    assert notebook_diff(committed, fresh) == ""


# The committed probes' own masks.

PROBE_FILES = sorted(PROBES.glob("*.ipynb"))


def _runs(probe: Path) -> list[nbformat.NotebookNode]:
    """The probe's executed notebooks, one per profile it ran under."""
    return [nbformat.read(p, as_version=4) for p in sorted(PROBES.glob(f"runs/*/{probe.name}"))]


def _cell_texts(cell: Any, path: str) -> list[str]:
    """The texts a cell's mask at ``path`` (``/outputs/*/text`` or ``.../text/plain``) sees."""
    if path.endswith("/text/plain"):
        return [o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", [])]
    return [o.get("text", "") for o in cell.get("outputs", [])]


@pytest.mark.parametrize("path", PROBE_FILES, ids=[p.stem for p in PROBE_FILES])
def test_every_probe_mask_is_valid_and_matches_its_cell(path: Path) -> None:
    source = nbformat.read(path, as_version=4)
    assert "volatile" not in source.metadata.get("hubprobe", {}), "masks go in the cells' nbreg"
    config_from_metadata(source)  # validates nbreg against pytest-notebook's schema
    runs = [coalesce_streams(nb, {})[0] for nb in _runs(path)]
    assert runs, f"{path.name} has no executed run under any profile"
    for n, cell in enumerate(source.cells):
        for where, regex, _repl in cell.metadata.get("nbreg", {}).get("diff_replace", []):
            assert where in ("/outputs/*/text", "/outputs/*/data/text/plain"), (n, where)
            # A mask is alive if it matches the cell's output under some profile.
            hits = [
                t for run in runs for t in _cell_texts(run.cells[n], where) if re.search(regex, t)
            ]
            assert hits, f"{path.name} cell {n}: mask {regex!r} matches nothing in any run"


def _other_notebook_both_killed() -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """other-notebook's committed run, and a copy where the OOM killer took both kernels."""
    # A process-scope profile: there the idle kernel is killed and the server lives.
    committed = nbformat.read(
        PROBES / "runs" / "curriculum-guide" / "other-notebook.ipynb", as_version=4
    )
    fresh = copy.deepcopy(committed)
    stream, figures = fresh.cells[3].outputs
    stream.text = (
        "killed: ['other', 'mine'] at [1.502, 1.871] s; first: other\n"
        "allocation with the idle notebook open: killed\n"
    )
    figures.data["text/plain"] = (
        "killed = ['other', 'mine']\nfirst_killed = 'other'\nkill_gap_seconds = 0.369\n"
        "allocation_with_other_open = 'killed'\noom_kills_with_other_open = 2"
    )
    return committed, fresh


def test_other_notebook_either_of_its_two_outcomes_passes() -> None:
    committed, fresh = _other_notebook_both_killed()
    assert "'other'" in committed.cells[3].outputs[0].text
    assert notebook_diff(committed, fresh) == ""


def test_other_notebook_an_outcome_outside_the_two_fails() -> None:
    committed, fresh = _other_notebook_both_killed()
    figures = fresh.cells[3].outputs[1]
    figures.data["text/plain"] = figures.data["text/plain"].replace("= 2", "= 1")  # kills
    assert "oom_kills_with_other_open = 1" in notebook_diff(committed, fresh)
    stream = fresh.cells[3].outputs[0]
    stream.text = "killed: ['mine'] at [1.5] s; first: mine\n" + stream.text.split("\n", 1)[1]
    assert "first: mine" in notebook_diff(committed, fresh)


def test_masks_come_from_the_source_when_given() -> None:
    """A committed run carries the masks it ran with; the probe's source has today's."""
    old_mask = {"diff_replace": [["/outputs/*/text", r"(peak )\d+( GiB)", r"\1<GiB>\2"]]}
    committed = _nb(_out("peak 12 MiB\n"), nbreg=old_mask)
    fresh = _nb(_out("peak 13 MiB\n"), nbreg=old_mask)
    assert notebook_diff(committed, fresh), "the old mask does not cover MiB"
    source = _nb(nbreg=PEAK_MASK)
    assert notebook_diff(committed, fresh, masks=source) == ""
