"""Compare a committed, executed probe notebook with a fresh run of it.

Volatile values (numbers, kernel ids, temporary paths, memory addresses) are
masked by pattern; everything else in the outputs must match, so a probe
whose behaviour changes (a new error, a missing output, different text) is
caught even when its claims still pass.
"""

from __future__ import annotations

import re
from typing import Any

import nbformat

__all__ = ["MASKS", "masked_outputs", "notebook_differences"]

MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"0x[0-9a-f]+"), "<addr>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"/tmp/hubprobe-[^\s'\"]+"), "<tmp>"),
    (re.compile(r"\x1b\[[0-9;]*m"), ""),  # colours in tracebacks
    (re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?"), "<n>"),
]


def _mask(text: str) -> str:
    for pattern, repl in MASKS:
        text = pattern.sub(repl, text)
    return text


def masked_outputs(cell: Any) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for o in cell.get("outputs", []):
        kind = o["output_type"]
        if kind == "stream":
            out.append((kind, o["name"], _mask(o["text"])))
        elif kind == "error":
            out.append((kind, o["ename"]))
        else:
            data = o.get("data", {})
            out.append((kind, ",".join(sorted(data)), _mask(str(data.get("text/plain", "")))))
    return out


def notebook_differences(
    committed: nbformat.NotebookNode, fresh: nbformat.NotebookNode
) -> list[str]:
    """Human-readable differences, one per cell that differs; empty if none."""
    diffs = []
    if len(committed.cells) != len(fresh.cells):
        return [f"{len(committed.cells)} cells committed, {len(fresh.cells)} in the fresh run"]
    for n, (a, b) in enumerate(zip(committed.cells, fresh.cells, strict=True), start=1):
        if a.cell_type != "code":
            continue
        ma, mb = masked_outputs(a), masked_outputs(b)
        if ma != mb:
            diffs.append(f"cell {n}: committed {ma!r} != fresh {mb!r}")
    return diffs
