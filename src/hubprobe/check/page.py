"""The HTML report of ``hubprobe check``: one self-contained page for every notebook checked.

One file (inline style, inline SVG, no script, no fetched asset), so it can
be mailed to a co-instructor or opened offline. The chart is drawn here as
plain SVG rather than with matplotlib: ``check`` then needs only what
running notebooks needs (``hubprobe[probes]``). With several notebooks (a
course folder), the page starts with a table, a row per notebook linking to
its report below.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Sequence

from hubprobe import __version__
from hubprobe.check.run import CheckResult
from hubprobe.check.verdict import TIGHT_FRACTION, heaviest_by_memory, heaviest_by_time, memory_rise
from hubprobe.jupyter.cells import KERNEL_DIED, CellRun
from hubprobe.units import format_bytes

__all__ = ["html_report", "memory_chart", "outcome_text", "work_line", "working_bytes"]


def outcome_text(c: CellRun) -> str:
    """A cell's outcome as the terminal table and the HTML page both say it."""
    if c.outcome == "error":
        return f"error {c.error_name}"
    if c.outcome in KERNEL_DIED:
        return "killed (OOM)" if c.oom_kills else f"killed ({c.outcome})"
    return "not run" if c.outcome == "not-run" else c.outcome


def working_bytes(c: CellRun) -> int:
    """A cell's peak working set, or its raw peak where none was read."""
    return c.peak_working_set_bytes or c.peak_memory_bytes


# -- HTML ---------------------------------------------------------------------
_COLORS = {  # (held when the cell started, the rise during the cell)
    "ok": ("#c5cae9", "#3f51b5"),
    "error": ("#ffe0b2", "#e65100"),
    "killed": ("#f9dedc", "#b3261e"),
    "timeout": ("#d7ccc8", "#6d4c41"),
}
_VERDICT_COLORS = {
    "fits": "#1b5e20", "tight": "#8d6e00", "timeout": "#6d4c41", "error": "#e65100",
    "killed": "#b3261e", "interrupted": "#455a64",
}  # fmt: skip


def memory_chart(cells: Sequence[CellRun], limit: int) -> str:
    """Memory across the code cells as stacked bars, with the limit and the 80 % line.

    Each bar is the session's memory when the cell started (light) and how
    far it rose during the cell (dark), so its top is the cell's peak.
    """
    w, h, left, right, top, bottom = 720, 296, 64, 96, 32, 40
    pw, ph = w - left - right, h - top - bottom
    ymax = limit * 1.12

    def y(v: float) -> float:
        return top + ph - ph * min(v, ymax) / ymax

    n = max(len(cells), 1)
    slot = pw / n
    bar = max(min(slot * 0.7, 48), 1.5)
    label_every = math.ceil(n / 24)
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
            f'height="{h}" role="img" aria-label="Session memory per cell, with the memory limit">'
        ),
        "<title>Session memory per code cell, against the memory limit</title>",
        '<g font-family="system-ui, sans-serif" font-size="11" fill="#333">',
    ]
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        yy = y(limit * frac)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" '
                     'stroke="#eee"/>')  # fmt: skip
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">'
                     f"{html.escape(format_bytes(int(limit * frac), measured=True) if frac else '0')}</text>")  # fmt: skip
    for i, c in enumerate(cells):
        cx = left + slot * (i + 0.5)
        if c.outcome != "not-run":
            kind = "killed" if c.outcome in KERNEL_DIED else str(c.outcome)
            held_color, rise_color = _COLORS.get(kind, _COLORS["ok"])
            start = c.peak_memory_bytes - memory_rise(c)
            x0 = cx - bar / 2
            parts.append(
                f'<rect x="{x0:.1f}" y="{y(start):.1f}" width="{bar:.1f}" '
                f'height="{y(0) - y(start):.1f}" fill="{held_color}"/>'
                f'<rect x="{x0:.1f}" y="{y(c.peak_memory_bytes):.1f}" width="{bar:.1f}" '
                f'height="{y(start) - y(c.peak_memory_bytes):.1f}" fill="{rise_color}">'
                f"<title>cell {c.index}: {html.escape(outcome_text(c))}, peak "
                f"{format_bytes(c.peak_memory_bytes, measured=True)}, +{format_bytes(memory_rise(c), measured=True)}</title></rect>"
            )
        if i % label_every == 0 or c.outcome not in ("ok", "not-run"):
            color = "#999" if c.outcome == "not-run" else "#333"
            parts.append(f'<text x="{cx:.1f}" y="{top + ph + 16}" text-anchor="middle" '
                         f'fill="{color}">{c.index}</text>')  # fmt: skip
    parts.append(f'<text x="{left + pw / 2}" y="{h - 6}" text-anchor="middle">'
                 "cell (grey: not run)</text>")  # fmt: skip
    for value, label, dash, color in (
        (limit, f"limit {format_bytes(limit)}", "6 4", "#b3261e"),
        (limit * TIGHT_FRACTION, f"{TIGHT_FRACTION:.0%}: tight", "2 3", "#8d6e00"),
    ):
        yy = y(value)
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{color}" '
            f'stroke-width="1.5" stroke-dasharray="{dash}"/>'
            f'<text x="{left + pw + 6}" y="{yy + 4:.1f}" fill="{color}">{html.escape(label)}</text>'
        )
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#999"/>')
    for i, (color, label) in enumerate(
        (
            (_COLORS["ok"][0], "held when the cell started"),
            (_COLORS["ok"][1], "rise during the cell"),
        )
    ):
        x = left + 8 + i * 200
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{color}"/>'
                     f'<text x="{x + 18}" y="18">{label}</text>')  # fmt: skip
    parts.append("</g></svg>")
    return "\n".join(parts)


_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; }
.meta { color: #555; margin-top: 0; }
.verdict { display: inline-block; color: #fff; border-radius: 4px; padding: 0 .5em;
           font-weight: 600; margin-right: .4em; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: 14px; }
th, td { padding: .15rem .6rem; border-bottom: 1px solid #e0e0e0; text-align: right; }
th { background: #f5f5f5; } td.code { text-align: left; font-family: ui-monospace, monospace;
     max-width: 22rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
td.outcome, th.left { text-align: left; } tr.bad td { background: #fdecea; } tr.notrun td { color: #999; }
.hints li { margin: .2rem 0; } .heavy { display: flex; gap: 2rem; flex-wrap: wrap; }
svg { max-width: 100%; height: auto; }
"""


#: Calls that do a cell's work (load, build, fit, run in parallel), as opposed to
#: the imports, prints and small assignments around them.
_WORK = re.compile(
    r"\b(?:read_\w+|load\w*|fromfile|genfromtxt|merge|join|concat|groupby|pivot\w*|apply|"
    r"fit\w*|predict\w*|transform|Parallel|cross_val\w*|train\w*|zeros|ones|empty|full|"
    r"arange|linspace|random|rand\w*|normal|exponential|integers|choice|tile|repeat|outer|"
    r"meshgrid|DataFrame|Series|array|sample|sort\w*|sum|mean|einsum|dot|matmul|simulate)\s*\(|@"
)


def work_line(source: str) -> str:
    """The line that shows what the cell does: a line that does the work, if one can be told.

    The first line of a cell is often an import or a comment; the cell that
    allocated 320 MB says so in the line that reads, builds or fits. Failing
    that, the first line that is code (not blank, not a comment, not an import).
    """
    lines = [ln for ln in source.splitlines() if ln.strip()]
    code = [ln for ln in lines if not ln.lstrip().startswith(("#", "%", "!"))]
    plain = [ln for ln in code if not ln.lstrip().startswith(("import ", "from "))]
    working = [ln for ln in plain if _WORK.search(ln)]
    return (working or plain or code or lines or [""])[0].strip()[:80]


def _about_html(r: CheckResult) -> str:
    """Which Python and packages ran it, what was copied: versions change verdicts."""
    esc = html.escape
    items = []
    if r.interpreter:
        items.append(f"<li>Kernel: {esc(r.interpreter)}</li>")
    if r.packages:
        listed = ", ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(r.packages.items()))
        items.append(f"<li>Packages the notebook imported: {listed}</li>")
    if r.copied:
        items.append(
            f"<li>Copied into the home: {esc(r.copied)}; the kernel started in "
            f"<code>{esc(r.kernel_cwd)}</code></li>"
        )
    items += [f"<li>{esc(n)}</li>" for n in r.notes]
    return f'<ul class="about">{"".join(items)}</ul>' if items else ""


def _index_html(results: Sequence[CheckResult]) -> str:
    """A row per notebook, linking to its report below: the course at a glance."""
    esc = html.escape
    rows = []
    for i, r in enumerate(results, start=1):
        v = r.verdict
        heavy = heaviest_by_memory(r.cells, n=1)
        heaviest = (
            f"cell {heavy[0].index} +{format_bytes(memory_rise(heavy[0]), measured=True)}"
            if heavy
            else ""
        )
        at = f" at cell {v.at_cell}" if v.at_cell is not None else ""
        rows.append(
            f'<tr><td class="code"><a href="#notebook-{i}">{esc(str(r.path))}</a></td>'
            f'<td class="outcome"><span class="verdict" style="background:'
            f'{_VERDICT_COLORS[v.kind]}">{v.kind}</span>{at}</td>'
            f"<td>{format_bytes(v.peak_working_set_bytes or v.peak_memory_bytes, measured=True)}"
            f" ({v.working_set_fraction:.0%})</td><td>{r.wall_seconds:.1f} s</td>"
            f'<td class="outcome">{heaviest}</td></tr>'
        )
    return (
        '<h2 id="notebooks">The notebooks</h2><table><tr><th class="left">notebook</th>'
        '<th class="left">verdict</th><th>peak (working set)</th><th>time</th>'
        f'<th class="left">heaviest cell</th></tr>{"".join(rows)}</table>'
    )


def _notebook_html(r: CheckResult, anchor: str = "") -> str:
    v = r.verdict
    esc = html.escape
    ran = [c for c in r.cells if c.outcome != "not-run"]
    rows = []
    for c in r.cells:
        cls = "notrun" if c.outcome == "not-run" else ("" if c.outcome == "ok" else "bad")
        numbers = (
            "<td></td>" * 6
            if c.outcome == "not-run"
            else f"<td>{c.wall_seconds:.2f} s</td><td>{c.cpu_seconds:.2f} s</td>"
            f"<td>{c.throttled_seconds:.2f} s</td><td>{format_bytes(c.peak_memory_bytes, measured=True)}</td>"
            f"<td>{format_bytes(working_bytes(c), measured=True)}</td>"
            f"<td>+{format_bytes(memory_rise(c), measured=True)}</td>"
        )
        rows.append(
            f'<tr class="{cls}"><td>{c.index}</td><td class="code" '
            f'title="{esc(r.sources.get(c.index, "")[:400])}">'
            f"{esc(work_line(r.sources.get(c.index, '')))}</td>"
            f'<td class="outcome">{esc(outcome_text(c))}</td>{numbers}</tr>'
        )
    by_mem = "".join(
        f"<tr><td>{c.index}</td><td>+{format_bytes(memory_rise(c), measured=True)}</td>"
        f"<td>{format_bytes(c.peak_memory_bytes, measured=True)}</td></tr>"
        for c in heaviest_by_memory(r.cells)
    )
    by_time = "".join(
        f"<tr><td>{c.index}</td><td>{c.wall_seconds:.2f} s</td><td>{c.cpu_seconds:.2f} s</td></tr>"
        for c in heaviest_by_time(r.cells)
    )
    hints = "".join(f"<li>{h.where}: {esc(h.text)}</li>" for h in r.hints)
    return f"""
<section{f' id="{anchor}"' if anchor else ""}>
<h2><span class="verdict" style="background:{_VERDICT_COLORS[v.kind]}">{v.kind}</span>
{esc(str(r.path))}</h2>
<p>{esc(v.detail)}. Peak {format_bytes(v.peak_memory_bytes, measured=True)} of
{format_bytes(v.memory_limit_bytes)} ({v.peak_fraction:.0%}); working set (without the page
cache the kernel reclaims first, as Kubernetes counts it)
{format_bytes(v.peak_working_set_bytes or v.peak_memory_bytes, measured=True)}
({v.working_set_fraction:.0%}); headroom
{format_bytes(v.headroom_bytes, measured=True)}. {len(ran)} of {len(r.cells)} code cells ran
({r.total_cells} cells in all) in {sum(c.wall_seconds for c in ran):.1f} s, after
{r.startup_seconds:.1f} s to start the server and kernel.</p>
{f"<p>{esc(v.spread)}.</p>" if v.spread else ""}
{_about_html(r)}
{memory_chart(r.cells, v.memory_limit_bytes)}
{f'<h3>Worth telling the author</h3><ul class="hints">{hints}</ul>' if hints else ""}
<div class="heavy">
<div><h3>Heaviest cells by memory</h3><table><tr><th>cell</th><th>rise</th><th>peak</th></tr>
{by_mem}</table></div>
<div><h3>Heaviest cells by time</h3><table><tr><th>cell</th><th>wall</th><th>CPU</th></tr>
{by_time}</table></div>
</div>
<h3>Cell by cell</h3>
<table><tr><th>cell</th><th class="left">code</th><th class="left">outcome</th><th>wall</th><th>CPU</th>
<th>throttled</th><th>peak</th><th>working set</th><th>rise</th></tr>
{"".join(rows)}
</table>
</section>"""


def html_report(results: Sequence[CheckResult], *, cell_timeout: float) -> str:
    """One self-contained page for every notebook checked."""
    p = results[0].profile
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(r.path.name for r in results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hubprobe check: {html.escape(names)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Will it fit on the hub?</h1>
<p class="meta">Profile <b>{html.escape(p.name)}</b>: memory {format_bytes(p.memory_limit_bytes)},
{p.cpu_limit:g} CPU, home {format_bytes(p.storage_bytes)}. Each notebook ran as a student's
would: a fresh server and kernel in a {html.escape(results[0].backend)} sandbox with these
limits, its folder or the course repository around it copied into the home (each report
says which), each cell stopped after {cell_timeout:g} s. Memory is the whole session's
(server and kernel); fits and tight are judged on its working set, as Kubernetes judges a
container. {date}, hubprobe {__version__}.</p>
{_index_html(results) if len(results) > 1 else ""}
{"".join(_notebook_html(r, f"notebook-{i}") for i, r in enumerate(results, start=1))}
</body></html>
"""
