"""Pure str -> str: claim badges, measured figures, per-hub prose and tables into Markdown.

The narrow shortcodes (HTML comments, so a page still reads well unrendered,
and so that code samples with braces are never touched):

- ``<!-- claim: ID -->`` right after the sentence a probe verifies: a badge
  per hub saying what kind of evidence stands behind it (reproduced in the
  sandbox under the hub's profile, measured on a live hub, a configuration
  value, or why it does not apply there); the first one carries the anchor.
- ``<!-- figure: ID.name -->``: a figure the claim's probe measured, per hub.
- ``<!-- profile: field -->`` (per hub) or ``<!-- profile: NAME.field -->``
  (one hub): a value of the hub profile, with its source on hover.
- ``<!-- when: EXPR -->`` ... ``<!-- end when -->``: text for the hubs whose
  profile makes ``EXPR`` true (``profile.oom_scope == 'container'``; the same
  evaluator as the claims); on one line, inline.
- ``<!-- table: profiles -->``, ``<!-- table: claims -->``: generated tables.
- ``<!-- chart: NAME -->``: a chart drawn from measured data, per hub (charts.py).

Each variant is marked with its hubs (:mod:`hubprobe.site.hubs`); the
chooser shows one hub's. Problems (unknown ids, missing or failed results)
are returned, not raised, so the MkDocs hook can report them all and
``--strict`` fails the build.
"""

from __future__ import annotations

import html
import re
from typing import Any

from hubprobe.claims import expectations
from hubprobe.claims.registry import Claim
from hubprobe.profiles import Profile
from hubprobe.site.charts import TIMING_CHARTS
from hubprobe.site.evidence import (
    LABELS,
    Context,
    attribute,
    badge_words,
    format_figure,
    profile_values,
    source,
)
from hubprobe.site.hubs import DEFAULT_HUB, hub_short, possessive
from hubprobe.units import format_bytes

__all__ = [
    "SHORTCODE",
    "WHEN",
    "Context",
    "badge_words",
    "chart_path",
    "format_figure",
    "probe_summary",
    "profile_values",
    "render",
    "result_problems",
]

SHORTCODE = re.compile(r"<!--\s*(claim|figure|profile|table|chart):\s*([A-Za-z0-9_.\-]+)\s*-->")
#: The opening and the closing comment of a ``when`` block (blocks may nest).
WHEN = re.compile(r"<!--\s*when:\s*(?P<expr>.*?)\s*-->|<!--\s*end when\s*-->")


def _badge(ctx: Context, claim: Claim, anchor: bool) -> str:
    def one(hub: str) -> str:
        status = ctx.status(claim, hub)
        if status not in ("verified", "skipped"):
            ctx.problem(
                f"claim {claim.id} is {LABELS[status]} under the {hub} profile: "
                f"run `hubprobe probes --profile {hub}`"
            )
        css, text, hover, href = badge_words(ctx, claim, hub)
        title = attribute(claim.statement + (f" — {hover}" if hover else ""))
        return (
            f'<a class="hp-badge {css}" href="{href}" title="{title}" '
            f'data-claim="{claim.id}">{html.escape(text, quote=False)}</a>'
        )

    attr = f' id="{claim.id}"' if anchor else ""
    return f'<span class="hp-claim"{attr}>{ctx.per_hub(one)}</span>'


def _figure_value(ctx: Context, claim: Claim, hub: str, name: str) -> Any:
    entry = ctx.entry(hub, claim.id)
    probe = ctx.results.get(hub, {}).get("probes", {}).get(claim.probe, {})
    for recorded in (entry.get("figures", {}), probe.get("figures", {})):
        if name in recorded:
            return recorded[name]
    return KeyError


def _figure(ctx: Context, ref: str) -> str:
    claim_id, _, name = ref.partition(".")
    claim = ctx.claims.get(claim_id)
    if claim is None or not name:
        ctx.problem(f"figure {ref}: write <!-- figure: CLAIM-ID.name --> with a known claim")
        return "?"

    def one(hub: str) -> str:
        value = _figure_value(ctx, claim, hub, name)
        if value is KeyError:
            status = ctx.status(claim, hub)
            if status in ("failed", "stale", "not-run"):
                return '<span class="hp-figure hp-unmeasured">?</span>'  # reported as such
            if status == "skipped":
                reason = attribute(str(ctx.entry(hub, claim.id).get("reason") or claim.otherwise))
                return f'<span class="hp-figure hp-unmeasured" title="{reason}">not measured</span>'
            ctx.problem(
                f"figure {ref}: the {claim.probe} probe recorded no figure {name!r} under {hub}"
            )
            return "?"
        return (
            f'<span class="hp-figure" data-figure="{claim.probe}.{name}" title="measured by '
            f'the {claim.probe} probe under {possessive(hub)} profile">'
            f"{html.escape(format_figure(name, value))}</span>"
        )

    return ctx.per_hub(one)


#: Values a page may name that are not fields: the hub's name, and its storage
#: in words ("10 GiB", or that there is no per-user quota).
PSEUDO_FIELDS = ("hub", "storage")


def _value_text(profile: Profile, field: str) -> str:
    if field == "hub":
        return hub_short(profile.name)
    if field == "storage":
        return _storage_text(profile)
    value = getattr(profile, field)
    if field in {"cpu_limit", "cpu_guarantee"}:
        return f"{value:g} CPU"
    return format_figure(field, value)


def _profile_value(ctx: Context, ref: str) -> str:
    name, _, field = ref.rpartition(".")
    if name and name not in ctx.profiles:
        ctx.problem(f"profile {ref}: unknown profile")
        return "?"
    sample = ctx.profiles.get(name or ctx.default) or next(iter(ctx.profiles.values()))
    if field not in PSEUDO_FIELDS and not hasattr(sample, field):
        ctx.problem(f"profile {ref}: unknown field")
        return "?"

    def one(hub: str) -> str:
        profile = ctx.profiles[hub]
        text = html.escape(_value_text(profile, field))
        if field == "hub":
            return text
        key = field
        if field == "storage":
            key = "storage_bytes" if profile.storage_per_user_quota else "storage_per_user_quota"
        title = attribute(f"configuration value — source: {source(profile, key)}")
        return f'<span class="hp-config-value" title="{title}">{text}</span>'

    if name:
        return one(name)
    return ctx.per_hub(one)


def _storage_text(p: Profile) -> str:
    size = format_bytes(p.storage_bytes)
    return size if p.storage_per_user_quota else "a shared volume, no per-user quota"


def _scope_text(p: Profile) -> str:
    scope = "the kernel" if p.oom_scope == "process" else "the whole server"
    return scope + (" (inferred)" if profile_values(p)["profile.oom_scope_inferred"] else "")


def _profiles_table(ctx: Context) -> str:
    rows = [
        "| hub | memory limit | memory guarantee | CPU limit | CPU guarantee | storage | OOM kill takes |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in ctx.profiles.values():
        rows.append(
            f"| [{hub_short(p.name)}](#{p.name}) `{p.name}` | {format_bytes(p.memory_limit_bytes)} "
            f"| {format_bytes(p.memory_guarantee_bytes)} | {p.cpu_limit:g} | {p.cpu_guarantee:g} "
            f"| {_storage_text(p)} | {_scope_text(p)} |"
        )
    return "\n".join(rows)


def _claims_table(ctx: Context) -> str:
    rows = ["| claim | statement | by hub | recorded in the sandbox |", "|---|---|---|---|"]
    for claim in ctx.claims.values():
        page = ctx.claim_pages.get(claim.id)
        # Raw HTML links: the post-build scan checks them (MkDocs cannot see
        # the ids our badges carry).
        link = (
            f'<a href="{ctx.link(page)}#{claim.id}"><code>{claim.id}</code></a>'
            if page is not None
            else f"`{claim.id}`"
        )
        statuses = []
        for hub in ctx.profiles:
            # The badge's own class and icon (⚙ for a configuration value, not ✔).
            css, words, _hover, _href = badge_words(ctx, claim, hub)
            statuses.append(
                f'<span class="{css}" title="{attribute(words)}">'
                f"{html.escape(words.split()[0])} {html.escape(hub_short(hub))}</span>"
            )

        def figures(hub: str, claim: Claim = claim) -> str:
            shown = ctx.entry(hub, claim.id).get("figures", {})
            # one a line: a narrow column, the statement gets the room
            return "<br>".join(
                html.escape(f"{k} = {format_figure(k, v)}") for k, v in shown.items()
            )

        rows.append(
            f"| {link} | {claim.statement} | {'<br>'.join(statuses)} | {ctx.per_hub(figures)} |"
        )
    return "\n".join(rows)


def _chart(ctx: Context, name: str) -> str:
    drawn = ctx.charts.get(name)
    if not drawn:
        ctx.problem(f"unknown or undrawn chart {name!r}")
        return f"<!-- chart: {name} -->"

    def one(hub: str) -> str:
        if hub not in drawn:
            probe = ctx.chart_probes.get(name, name)
            return (
                f'<p class="hp-nochart">No chart for {html.escape(hub_short(hub))}: the {probe} '
                "probe recorded no data for it under this hub's profile.</p>"
            )
        probe = ctx.chart_probes.get(name, name)
        env = ctx.results.get(hub, {}).get("probes", {}).get(probe, {}).get("environment", {})
        cores = int(env.get("machine_cpus") or 0)
        caption = ""
        if name in TIMING_CHARTS and cores and ctx.profiles[hub].cpu_limit >= cores:
            # The quota did not bind: the machine's cores did. Say so under the picture.
            caption = (
                f"<figcaption>Measured on a machine of {cores} cores, no more than "
                f"{html.escape(possessive(hub), quote=False)} CPU limit: the times show what "
                "the machine's cores allow, not what the hub's limit does.</figcaption>"
            )
        return (
            f'<figure class="hp-chart"><img src="{ctx.link(chart_path(name, hub, ctx.default))}" '
            f'alt="{html.escape(drawn[hub])}">{caption}</figure>'
        )

    return ctx.per_hub(one, block=True)


def chart_path(name: str, hub: str, default: str = DEFAULT_HUB) -> str:
    """Where a hub's chart is in the site (the default hub's at the old address)."""
    return f"assets/charts/{name}.svg" if hub == default else f"assets/charts/{name}-{hub}.svg"


def _shortcodes(text: str, ctx: Context, seen: set[str]) -> str:
    def replace(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "claim":
            claim = ctx.claims.get(arg)
            if claim is None:
                ctx.problem(f"unknown claim id {arg!r}: see probes/claims.toml")
                return m.group(0)
            first = arg not in seen
            seen.add(arg)
            return _badge(ctx, claim, anchor=first)
        if kind == "figure":
            return _figure(ctx, arg)
        if kind == "profile":
            return _profile_value(ctx, arg)
        if kind == "chart":
            return _chart(ctx, arg)
        tables = {"profiles": _profiles_table, "claims": _claims_table}
        if arg not in tables:
            ctx.problem(f"unknown table {arg!r}: one of {', '.join(tables)}")
            return m.group(0)
        return tables[arg](ctx)

    return SHORTCODE.sub(replace, text)


def _when(expr: str, body: str, indent: str | None, ctx: Context, seen: set[str]) -> str:
    """A ``when`` block: its text for the hubs whose profile makes ``expr`` true."""
    try:
        fits = [
            hub for hub in ctx.hubs if expectations.check(expr, profile_values(ctx.profiles[hub]))
        ]
    except (expectations.ExpectationError, expectations.MissingFigure) as exc:
        ctx.problem(f"when {expr!r}: {exc}")
        return body
    if not fits:
        ctx.problem(f"when {expr!r}: no hub profile fits, so its text would never show")
    # A claim whose first badge is in the block keeps its anchor outside it, so
    # a link to it lands whatever hub is chosen.
    named = [arg for kind, arg in SHORTCODE.findall(body) if kind == "claim"]
    hoisted = [c for c in dict.fromkeys(named) if c in ctx.claims and c not in seen]
    seen.update(hoisted)
    outer = ctx.scope
    ctx.scope = fits
    try:
        inner = _render(body, ctx, seen)
    finally:
        ctx.scope = outer
    names = " ".join(fits)
    if indent is None or not body.startswith("\n"):
        spans = "".join(f'<span class="hp-anchor" id="{a}"></span>' for a in hoisted)
        return f'{spans}<span class="hp-hub hp-when" data-hub="{names}">{inner}</span>'
    divs = "".join(f'<div class="hp-anchor" id="{a}"></div>\n\n{indent}' for a in hoisted)
    return (
        f'{divs}<div class="hp-hub hp-when" data-hub="{names}" markdown>\n\n'
        f"{inner.strip(chr(10)).rstrip()}\n\n{indent}</div>"
    )


def _render(text: str, ctx: Context, seen: set[str]) -> str:
    out: list[str] = []
    pos = 0  # rendered up to here
    depth, start, expr = 0, 0, ""
    for m in WHEN.finditer(text):
        if m.group("expr") is not None:
            if depth == 0:
                out.append(_shortcodes(text[pos : m.start()], ctx, seen))
                start, expr = m.start(), m.group("expr")
                pos = m.end()
            depth += 1
            continue
        if depth == 0:
            ctx.problem("an <!-- end when --> without its <!-- when: ... -->")
            continue
        depth -= 1
        if depth == 0:
            line = text[text.rfind("\n", 0, start) + 1 : start]
            indent = line if not line.strip() else None  # a block starts its line
            out.append(_when(expr, text[pos : m.start()], indent, ctx, seen))
            pos = m.end()
    if depth:
        ctx.problem(f"<!-- when: {expr} --> is never closed by <!-- end when -->")
    out.append(_shortcodes(text[pos:], ctx, seen))
    return "".join(out)


def render(markdown: str, ctx: Context) -> str:
    """Replace every shortcode; problems are appended to ``ctx.problems``."""
    return _render(markdown, ctx, set())


def result_problems(ctx: Context) -> list[str]:
    """Every (claim, profile) whose result is missing, failed or stale; skipped is fine."""
    return [
        f"claim {claim.id} is {LABELS[status]} under the {hub} profile: "
        f"run `hubprobe probes --profile {hub}`"
        for claim in ctx.claims.values()
        for hub in ctx.profiles
        if (status := ctx.status(claim, hub)) not in ("verified", "skipped")
    ]


def _inline_code(text: str) -> str:
    """Escaped text with `code` spans as <code>, for statements shown as HTML."""
    parts = html.escape(" ".join(text.split())).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def probe_summary(ctx: Context, probe: str, shown: str | None = None) -> str:
    """What a probe page shows first: each claim it verifies, per hub, and its chart.

    A badge links here (``probes/<probe>/#<claim-id>``), so a reader lands on
    what the probe found rather than on a cell of ``record(...)`` calls; the
    executed notebook follows below (``shown``: the profile whose run it is).
    """
    blocks = []
    for claim in ctx.claims.values():
        if claim.probe != probe:
            continue

        def one(hub: str, claim: Claim = claim) -> str:
            status = ctx.status(claim, hub)
            entry = ctx.entry(hub, claim.id)
            recorded = ctx.results.get(hub, {}).get("probes", {}).get(probe, {}).get("figures", {})
            figures = {**recorded, **entry.get("figures", {})} if status != "skipped" else {}
            rows = "".join(
                f"<tr><td><code>{html.escape(name)}</code></td>"
                f"<td>{html.escape(format_figure(name, figures[name]))}</td></tr>"
                for name in claim.show
                if name in figures
            )
            css, text, _hover, _href = badge_words(ctx, claim, hub)
            backend = (
                f' <span title="{html.escape(entry["backend"])} sandbox">(sandbox)</span>'
                if entry.get("backend")
                else ""
            )
            table = (
                f'<table class="hp-figures"><tr><th>figure</th><th>measured</th></tr>{rows}</table>'
                if rows
                else ""
            )
            return f'<p class="{css}">{html.escape(text, quote=False)}{backend}</p>{table}'

        page = ctx.claim_pages.get(claim.id)
        where = (
            f'<p><a href="{ctx.link(page)}#{claim.id}">Where the guide says it</a></p>'
            if page is not None
            else ""
        )
        blocks.append(
            f'<div class="hp-probe-claim" id="{claim.id}">'
            f"<p><strong>{_inline_code(claim.statement)}</strong></p>"
            f"{ctx.per_hub(one, block=True)}{where}</div>"
        )
    charts = "".join(
        _chart(ctx, name) for name in ctx.charts if ctx.chart_probes.get(name) == probe
    )
    if not blocks:
        return ""
    ran = (
        f" under {html.escape(possessive(shown), quote=False)} profile"
        + ("" if shown == ctx.default else f" (it does not run under {possessive(ctx.default)})")
        if shown
        else ""
    )
    return (
        '<section class="hp-probe-summary"><h2 id="what-it-showed">What this probe showed</h2>'
        + "".join(blocks)
        + charts
        + f"<p>Below, the notebook as it ran{ran}: every cell with its output, numbered as "
        "the kernel ran it.</p></section>"
    )
