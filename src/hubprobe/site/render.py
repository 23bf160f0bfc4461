"""Pure str -> str: claim badges, measured figures and tables into Markdown.

The narrow shortcodes (HTML comments, so a page still reads well unrendered,
and so that code samples with braces are never touched):

- ``<!-- claim: ID -->`` right after the sentence a probe verifies: a badge
  (verified / failed / stale / not run, the date, backend and profile) that
  links to the rendered probe; it also carries the claim's anchor.
- ``<!-- figure: ID.name -->``: a figure the claim's probe measured.
- ``<!-- profile: field -->`` or ``<!-- profile: NAME.field -->``: a value of
  the measured profile, or of the named hub profile.
- ``<!-- table: profiles -->``, ``<!-- table: claims -->``: generated tables.
- ``<!-- chart: NAME -->``: a chart drawn from measured data (see charts.py).

Problems (unknown ids, missing or failed results) are returned, not raised,
so the MkDocs hook can report them all and ``--strict`` fails the build.
"""

from __future__ import annotations

import dataclasses
import html
import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

from hubprobe.claims.registry import Claim
from hubprobe.profiles import Profile
from hubprobe.units import format_bytes

__all__ = ["SHORTCODE", "Context", "format_figure", "probe_summary", "render"]

SHORTCODE = re.compile(r"<!--\s*(claim|figure|profile|table|chart):\s*([A-Za-z0-9_.\-]+)\s*-->")

LABELS = {"verified": "verified", "failed": "failed", "stale": "stale", "not-run": "not run"}
ICONS = {"verified": "✔", "failed": "✘", "stale": "↻", "not-run": "?"}
#: What a badge says, in words a reader needs no key for.
WORDS = {
    "verified": "measured in the sandbox",
    "failed": "failed in the sandbox",
    "stale": "probe changed since it ran",
    "not-run": "not measured yet",
}


@dataclasses.dataclass
class Context:
    claims: Mapping[str, Claim]
    results: Mapping[str, Any]  # the results file's data
    status: Callable[[Claim], str]  # verified / failed / stale / not-run
    profiles: Mapping[str, Profile]
    measured_profile: str
    page_url: str  # this page's URL, e.g. "how-to/unstuck/"
    claim_pages: Mapping[str, str] = dataclasses.field(default_factory=dict)  # id -> page URL
    charts: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> alt text
    chart_probes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> probe
    problems: list[str] = dataclasses.field(default_factory=list)

    def link(self, target: str) -> str:
        """A relative link from this page to a site URL like ``probes/oom/``."""
        rel = posixpath.relpath(target or ".", self.page_url or ".")
        if (target == "" or target.endswith("/")) and not rel.endswith("/"):
            rel += "/"
        return rel


def format_figure(name: str, value: Any) -> str:
    """A figure as a reader wants it: sizes in GiB/MiB, times in seconds."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(format_figure(name, v) for v in value) or "none"
    words = set(name.split("_"))
    if isinstance(value, int | float) and "bytes" in words:
        return format_bytes(int(value))
    if isinstance(value, int | float) and "seconds" in words:
        if value >= 120 and value % 60 == 0:
            return f"{value / 60:g} min"
        return f"{value:.2g} s" if value < 1 else f"{value:.1f} s"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _badge(ctx: Context, claim: Claim, anchor: bool) -> str:
    status = ctx.status(claim)
    entry = ctx.results.get("claims", {}).get(claim.id, {})
    if status != "verified":
        ctx.problems.append(f"claim {claim.id} is {LABELS[status]}: run `hubprobe probes`")
    date = str(entry.get("date", ""))[:10]
    # In words on the page; the backend (a name only maintainers know) on hover.
    title = html.escape(
        f"{claim.statement} — {LABELS[status]}"
        + (
            f" on {date} in the {entry['backend']} sandbox with the {entry['profile']} profile"
            if entry
            else ""
        )
    ).replace("`", "&#96;")  # else Markdown turns `code` inside the attribute into <code>
    href = ctx.link(f"probes/{claim.probe}/") + f"#{claim.id}"
    attr = f' id="{claim.id}"' if anchor else ""
    where = f" · {entry.get('profile', '')} profile · {date}" if entry else ""
    text = f"{ICONS[status]} {WORDS[status]}{where}"
    return (
        f'<a{attr} class="hp-badge hp-{status}" href="{href}" title="{title}" '
        f'data-claim="{claim.id}">{html.escape(text)}</a>'
    )


def _figure(ctx: Context, ref: str) -> str:
    claim_id, _, name = ref.partition(".")
    claim = ctx.claims.get(claim_id)
    if claim is None or not name:
        ctx.problems.append(
            f"figure {ref}: write <!-- figure: CLAIM-ID.name --> with a known claim"
        )
        return "?"
    entry = ctx.results.get("claims", {}).get(claim_id, {})
    probe = ctx.results.get("probes", {}).get(claim.probe, {})
    for source in (entry.get("figures", {}), probe.get("figures", {})):
        if name in source:
            return (
                f'<span class="hp-figure" data-figure="{claim.probe}.{name}" title="measured by '
                f'the {claim.probe} probe">{html.escape(format_figure(name, source[name]))}</span>'
            )
    ctx.problems.append(f"figure {ref}: the {claim.probe} probe recorded no figure {name!r}")
    return "?"


def _profile_value(ctx: Context, ref: str) -> str:
    name, _, field = ref.rpartition(".")
    profile = ctx.profiles.get(name or ctx.measured_profile)
    if profile is None or not hasattr(profile, field):
        ctx.problems.append(f"profile {ref}: unknown profile or field")
        return "?"
    value = getattr(profile, field)
    if field in {"cpu_limit", "cpu_guarantee"}:
        return f"{value:g} CPU"
    return format_figure(field, value)


def _profiles_table(ctx: Context) -> str:
    rows = [
        "| hub | memory limit | memory guarantee | CPU limit | CPU guarantee | storage | OOM kill takes |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in ctx.profiles.values():
        scope = "the kernel" if p.oom_scope == "process" else "the whole server"
        rows.append(
            f"| `{p.name}` | {format_bytes(p.memory_limit_bytes)} | {format_bytes(p.memory_guarantee_bytes)} "
            f"| {p.cpu_limit:g} | {p.cpu_guarantee:g} | {format_bytes(p.storage_bytes)} | {scope} |"
        )
    return "\n".join(rows)


def _claims_table(ctx: Context) -> str:
    rows = ["| claim | statement | status | measured |", "|---|---|---|---|"]
    for claim in ctx.claims.values():
        page = ctx.claim_pages.get(claim.id)
        # Raw HTML links: the post-build scan checks them (MkDocs cannot see
        # the ids our badges carry).
        link = (
            f'<a href="{ctx.link(page)}#{claim.id}"><code>{claim.id}</code></a>'
            if page is not None
            else f"`{claim.id}`"
        )
        entry = ctx.results.get("claims", {}).get(claim.id, {})
        figures = "<br>".join(  # one a line: a narrow column, the statement gets the room
            html.escape(f"{k} = {format_figure(k, v)}") for k, v in entry.get("figures", {}).items()
        )
        status = ctx.status(claim)
        rows.append(
            f"| {link} | {claim.statement} | {ICONS[status]} {LABELS[status]} | {figures} |"
        )
    return "\n".join(rows)


def render(markdown: str, ctx: Context) -> str:
    """Replace every shortcode; problems are appended to ``ctx.problems``."""
    seen: set[str] = set()

    def replace(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "claim":
            claim = ctx.claims.get(arg)
            if claim is None:
                ctx.problems.append(f"unknown claim id {arg!r}: see probes/claims.toml")
                return m.group(0)
            first = arg not in seen
            seen.add(arg)
            return _badge(ctx, claim, anchor=first)
        if kind == "figure":
            return _figure(ctx, arg)
        if kind == "profile":
            return _profile_value(ctx, arg)
        if kind == "chart":
            if arg not in ctx.charts:
                ctx.problems.append(f"unknown or undrawn chart {arg!r}")
                return m.group(0)
            src = ctx.link(f"assets/charts/{arg}.svg")
            alt = html.escape(ctx.charts[arg])
            return f'<figure class="hp-chart"><img src="{src}" alt="{alt}"></figure>'

        tables = {"profiles": _profiles_table, "claims": _claims_table}
        if arg not in tables:
            ctx.problems.append(f"unknown table {arg!r}: one of {', '.join(tables)}")
            return m.group(0)
        return tables[arg](ctx)

    return SHORTCODE.sub(replace, markdown)


def _inline_code(text: str) -> str:
    """Escaped text with `code` spans as <code>, for statements shown as HTML."""
    parts = html.escape(" ".join(text.split())).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def probe_summary(ctx: Context, probe: str) -> str:
    """What a probe page shows first: each claim it verifies, its figures, its chart.

    A badge links here (``probes/<probe>/#<claim-id>``), so a reader lands on
    what the probe found rather than on a cell of ``record(...)`` calls; the
    executed notebook follows below for whoever wants every step.
    """
    blocks = []
    for claim in ctx.claims.values():
        if claim.probe != probe:
            continue
        status = ctx.status(claim)
        entry = ctx.results.get("claims", {}).get(claim.id, {})
        recorded = ctx.results.get("probes", {}).get(probe, {}).get("figures", {})
        figures = {**recorded, **entry.get("figures", {})}
        rows = "".join(
            f"<tr><td><code>{html.escape(name)}</code></td>"
            f"<td>{html.escape(format_figure(name, figures[name]))}</td></tr>"
            for name in claim.show
            if name in figures
        )
        when = ""
        if entry:
            when = (
                f' · <span title="{html.escape(entry["backend"])} sandbox">'
                f"{html.escape(entry['profile'])} profile · {str(entry['date'])[:10]}</span>"
            )
        page = ctx.claim_pages.get(claim.id)
        where = (
            f' · <a href="{ctx.link(page)}#{claim.id}">where the guide says it</a>'
            if page is not None
            else ""
        )
        table = (
            f'<table class="hp-figures"><tr><th>figure</th><th>measured</th></tr>{rows}</table>'
            if rows
            else ""
        )
        blocks.append(
            f'<div class="hp-probe-claim" id="{claim.id}">'
            f"<p><strong>{_inline_code(claim.statement)}</strong></p>"
            f'<p class="hp-{status}">{ICONS[status]} {WORDS[status]}{when}{where}</p>'
            f"{table}</div>"
        )
    charts = "".join(
        f'<figure class="hp-chart"><img src="{ctx.link(f"assets/charts/{name}.svg")}" '
        f'alt="{html.escape(alt)}"></figure>'
        for name, alt in ctx.charts.items()
        if ctx.chart_probes.get(name) == probe
    )
    if not blocks:
        return ""
    return (
        '<section class="hp-probe-summary"><h2 id="what-it-showed">What this probe showed</h2>'
        + "".join(blocks)
        + charts
        + "<p>Below, the notebook as it ran: every cell with its output, numbered as the "
        "kernel ran it.</p></section>"
    )
