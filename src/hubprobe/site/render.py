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

__all__ = ["SHORTCODE", "Context", "format_figure", "render"]

SHORTCODE = re.compile(r"<!--\s*(claim|figure|profile|table|chart):\s*([A-Za-z0-9_.\-]+)\s*-->")

LABELS = {"verified": "verified", "failed": "failed", "stale": "stale", "not-run": "not run"}
ICONS = {"verified": "✔", "failed": "✘", "stale": "↻", "not-run": "?"}


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
    where = f"{date} · {entry.get('backend', '')} · {entry.get('profile', '')}" if entry else ""
    title = html.escape(
        f"{claim.statement} — {LABELS[status]}"
        + (
            f" on {date} in the {entry['backend']} sandbox with the {entry['profile']} profile"
            if entry
            else ""
        )
    ).replace("`", "&#96;")  # else Markdown turns `code` inside the attribute into <code>
    href = ctx.link(f"probes/{claim.probe}/")
    attr = f' id="{claim.id}"' if anchor else ""
    text = f"{ICONS[status]} {LABELS[status]}" + (f" · {where}" if where else "")
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
            return f'<span class="hp-figure" title="measured by the {claim.probe} probe">{html.escape(format_figure(name, source[name]))}</span>'
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
        figures = "; ".join(
            f"{k} = {format_figure(k, v)}" for k, v in entry.get("figures", {}).items()
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
