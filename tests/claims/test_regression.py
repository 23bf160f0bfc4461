"""Masking of volatile values in the notebook regression check."""

from __future__ import annotations

import nbformat

from hubprobe.claims.regression import notebook_differences


def _nb(text: str, ename: str | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    if ename:
        cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue="", traceback=[]))
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("m"), cell])


def test_numbers_ids_and_paths_are_masked() -> None:
    a = _nb(
        "peak 2.05 GiB in 8.3 s, kernel 8045366f-4044-4f61-8c64-8b8a97a022e0 /tmp/hubprobe-1-x/home"
    )
    b = _nb(
        "peak 1.99 GiB in 7.1 s, kernel 11111111-2222-3333-4444-555555555555 /tmp/hubprobe-2-y/home"
    )
    assert notebook_differences(a, b) == []


def test_changed_text_or_new_error_is_caught() -> None:
    assert notebook_differences(_nb("True\n"), _nb("False\n"))
    diffs = notebook_differences(_nb("ok\n"), _nb("ok\n", ename="MemoryError"))
    assert diffs
    assert diffs[0].startswith("cell 2:")
