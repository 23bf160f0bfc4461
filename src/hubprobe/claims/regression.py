"""Compare a committed, executed probe notebook with a fresh run of it.

Volatile values (numbers, kernel ids, temporary paths, memory addresses) are
masked by pattern; everything else in the outputs must match, so a probe
whose behaviour changes (a new error, a missing output, different text) is
caught even when its claims still pass. A probe whose outcome legitimately
varies between runs (which of two kernels the kernel's OOM killer picks)
declares the varying lines as regular expressions in its notebook metadata,
``hubprobe.volatile``; they are masked too, and stay visible in the file.
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
    (re.compile(r"/\.nox/[^/\s]+/"), "/.nox/<env>/"),  # the same venv under another session
    (re.compile(r"\x1b\[[0-9;]*m"), ""),  # colours in tracebacks
    (re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?"), "<n>"),
]


def _mask(text: str, volatile: list[re.Pattern[str]]) -> str:
    for pattern in volatile:
        text = pattern.sub("<volatile>", text)
    for pattern, repl in MASKS:
        text = pattern.sub(repl, text)
    return re.sub(r"[ \t]+", " ", text)  # column padding follows the numbers' widths


def masked_outputs(
    cell: Any, volatile: list[re.Pattern[str]] | None = None
) -> list[tuple[str, ...]]:
    vol = volatile or []
    out: list[tuple[str, ...]] = []
    for o in cell.get("outputs", []):
        kind = o["output_type"]
        if kind == "stream":
            # How a print is split into messages is timing, not behaviour.
            if out and out[-1][:2] == (kind, o["name"]):
                out[-1] = (kind, o["name"], out[-1][2] + _mask(o["text"], vol))
            else:
                out.append((kind, o["name"], _mask(o["text"], vol)))
        elif kind == "error":
            out.append((kind, o["ename"]))
        else:
            data = o.get("data", {})
            out.append((kind, ",".join(sorted(data)), _mask(str(data.get("text/plain", "")), vol)))
    return out


def notebook_differences(
    committed: nbformat.NotebookNode, fresh: nbformat.NotebookNode
) -> list[str]:
    """Human-readable differences, one per cell that differs; empty if none."""
    diffs = []
    volatile = [re.compile(v) for v in committed.metadata.get("hubprobe", {}).get("volatile", [])]
    if len(committed.cells) != len(fresh.cells):
        return [f"{len(committed.cells)} cells committed, {len(fresh.cells)} in the fresh run"]
    for n, (a, b) in enumerate(zip(committed.cells, fresh.cells, strict=True), start=1):
        if a.cell_type != "code":
            continue
        ma, mb = masked_outputs(a, volatile), masked_outputs(b, volatile)
        if ma != mb:
            diffs.append(f"cell {n}: committed {ma!r} != fresh {mb!r}")
    return diffs
