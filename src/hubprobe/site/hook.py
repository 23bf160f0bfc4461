"""MkDocs hook: thin glue between MkDocs and :mod:`hubprobe.site.render`.

``on_config`` loads the registry, every hub profile and its results once;
``on_files`` finds the page of every claim, draws the charts per hub and
points each probe page at one executed run; ``on_page_markdown`` renders the
shortcodes (one variant per hub). Every problem is logged as a warning, so
``mkdocs build --strict`` fails on an unknown claim id, a (claim, profile)
result that is missing, failed or stale (skipped with a reason is fine), or
a claim that no page makes. Keeping MkDocs-specific code here keeps a move
to another generator cheap.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mkdocs.structure.files import File

from hubprobe.address import site_url
from hubprobe.claims.registry import Claim, load_claims
from hubprobe.claims.results import claim_status, load_all, runs_dir
from hubprobe.profiles import Profile, list_profiles, load_profile
from hubprobe.site.charts import CHART_PROBES, CHARTS, ChartError, make_chart
from hubprobe.site.hubs import DEFAULT_HUB, chooser, head, hold, hub_order, restore
from hubprobe.site.jargon import link_first_uses
from hubprobe.site.render import (
    SHORTCODE,
    Context,
    chart_path,
    probe_summary,
    render,
    result_problems,
)
from hubprobe.site.ui import load_ui, render_ui

log = logging.getLogger("mkdocs.hooks.hubprobe")

_state: dict[str, Any] = {}


def _live_results(folder: Path, profiles: dict[str, Profile]) -> dict[str, dict[str, Any]]:
    """probes/hub-results/*.json by the shipped profile of the hub they were measured on."""
    live: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        host = urlsplit(str(data.get("hub", {}).get("url", ""))).hostname or ""
        for name, profile in profiles.items():
            # A shipped profile names its hub's address in its title: "... (datahub.berkeley.edu)".
            if host and re.search(rf"\({re.escape(host)}\)", profile.title):
                live[name] = data
    return live


def on_config(config: Any) -> Any:
    root = Path(config["config_file_path"]).parent
    # One address for the sitemap, canonical links and the notice's default.
    try:
        config["site_url"] = site_url()
    except ValueError as exc:
        log.warning("%s", exc)
    probes = root / "probes"
    claims = {c.id: c for c in load_claims(probes / "claims.toml")}
    names = hub_order(list_profiles(), DEFAULT_HUB)
    profiles = {name: load_profile(name) for name in names}
    results = load_all(probes)
    # Once per build: each status hashes the probe notebook's source.
    status = {
        (c.id, hub): claim_status(results.get(hub, {}), c, probes, profiles[hub])
        for c in claims.values()
        for hub in profiles
    }
    _state.update(
        cache=root / ".cache" / "hubprobe-charts",
        probes=probes,
        claims=claims,
        results=results,
        profiles=profiles,
        live=_live_results(probes / "hub-results", profiles),
        status=status,
        held={},
        # What the browser measured (probes/ui/): <!-- ui: NAME.path --> quotes it.
        ui=load_ui(probes / "ui"),
    )
    return config


def _status(claim: Claim, hub: str) -> str:
    return str(_state["status"][(claim.id, hub)])


def _shown_run(probe: str) -> str | None:
    """The profile whose executed run a probe page shows: the default hub's, or the first that ran it."""
    for hub in _state["profiles"]:
        if (runs_dir(_state["probes"], hub) / f"{probe}.ipynb").exists():
            return str(hub)
    return None


def on_files(files: Any, config: Any) -> Any:
    for problem in result_problems(_context(None)):
        log.warning("%s", problem)
    # A claim's page (for the claims index and the probe pages) is where it is
    # explained: the page that uses it and its figures most; the home page,
    # which only summarises, comes last.
    uses: dict[str, Counter[str]] = {}  # claim id -> page URL -> shortcodes naming it
    claimed: set[tuple[str, str]] = set()  # (claim id, page URL) where its badge stands
    for f in files.documentation_pages():
        if not f.src_path.endswith(".md"):
            continue
        for m in SHORTCODE.finditer(Path(f.abs_src_path).read_text()):
            if m.group(1) in ("claim", "figure"):
                claim_id = m.group(2).split(".")[0]
                uses.setdefault(claim_id, Counter())[f.url] += 1
                if m.group(1) == "claim":
                    claimed.add((claim_id, f.url))
    pages = {
        claim_id: min(
            (url for url in counts if (claim_id, url) in claimed),
            key=lambda url: (url == "", -counts[url], url),
        )
        for claim_id, counts in uses.items()
        if any((claim_id, url) in claimed for url in counts)
    }
    _state["claim_pages"] = pages
    # A probe page shows one executed run (not six copies of each notebook).
    shown: dict[str, str] = {}
    for f in files.documentation_pages():
        if f.src_path.startswith("probes/") and f.src_path.endswith(".ipynb"):
            probe = Path(f.src_path).stem
            hub = _shown_run(probe)
            if hub is None:
                log.warning("probe %s ran under no profile: run `hubprobe probes`", probe)
                continue
            f.abs_src_path = str(runs_dir(_state["probes"], hub) / f"{probe}.ipynb")
            shown[probe] = hub
    _state["shown"] = shown
    drawn: dict[str, dict[str, str]] = {}
    for name, (_builder, alt) in CHARTS.items():
        for hub, profile in _state["profiles"].items():
            try:
                svg = make_chart(
                    name,
                    _state["results"].get(hub, {}),
                    runs_dir(_state["probes"], hub),
                    cache=_state["cache"] / hub,
                )
            except (ChartError, KeyError, OSError):
                continue  # this hub's probe did not run (its claims say why)
            path = chart_path(name, hub, DEFAULT_HUB)
            files.append(File.generated(config, path, content=svg))
            drawn.setdefault(name, {})[hub] = alt.format(**vars(profile))
        if name not in drawn:
            log.warning("chart %s: no hub has the data it draws", name)
    _state["charts"] = drawn
    for claim_id in _state["claims"]:
        if claim_id not in pages:
            log.warning("claim %s is in probes/claims.toml but on no page of the guide", claim_id)
    return files


#: The navigation section for those who run the probes, not those who teach.
MAINTAINERS = "For maintainers"
#: Search weight of a maintainer's page: instructors' pages answer first.
MAINTAINER_BOOST = 0.1


def on_nav(nav: Any, config: Any, files: Any) -> Any:
    def urls(items: Any) -> set[str]:
        found: set[str] = set()
        for item in items:
            if getattr(item, "children", None):
                found |= urls(item.children)
            elif getattr(item, "url", None) is not None:
                found.add(item.url)
        return found

    section = [i for i in nav.items if getattr(i, "title", None) == MAINTAINERS]
    if not section:
        log.warning("mkdocs.yml: the nav has no %r section", MAINTAINERS)
    _state["maintainer_pages"] = urls(section[0].children) if section else set()
    return nav


def _context(page: Any) -> Context:
    return Context(
        claims=_state["claims"],
        results=_state["results"],
        status=_status,
        profiles=_state["profiles"],
        page_url=page.url if page is not None else "",
        default=DEFAULT_HUB,
        live=_state["live"],
        claim_pages=_state.get("claim_pages", {}),
        charts=_state.get("charts", {}),
        chart_probes=CHART_PROBES,
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if not page.file.src_path.endswith(".md"):
        return markdown
    ctx = _context(page)
    out = render_ui(render(markdown, ctx), _state["ui"], ctx.problems)
    for problem in ctx.problems:
        # Result problems are reported once, in on_files.
        if " profile: run `hubprobe probes" not in problem:
            log.warning("%s: %s", page.file.src_path, problem)
    return out


# nbconvert's page template carries a module script that would import
# mermaid from a CDN if a notebook had diagrams; ours have none, and the site
# must not reference other hosts at all (it works offline).
_CDN_SCRIPT = re.compile(
    r"<script type=\"module\">(?:(?!</script>).)*?cdnjs\.cloudflare\.com.*?</script>", re.DOTALL
)


_ARTICLE = '<article class="md-content__inner md-typeset">'
GLOSSARY = "reference/glossary/"
_FIRST_CELL = '<div class="jp-Cell jp-MarkdownCell'
_CELL = '<div class="jp-Cell '


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    if page.url in _state["maintainer_pages"]:
        page.meta["search"] = {**(page.meta.get("search") or {}), "boost": MAINTAINER_BOOST}
    if not page.file.src_path.endswith(".md"):
        return html  # a probe page: linked once its summary is in (on_post_page)
    glossary = _context(page).link(GLOSSARY)
    # The search plugin reads this HTML next: other hubs' variants are kept
    # out of it (and of the first-use count) and come back in on_post_page.
    held: list[str] = []
    html = hold(html, DEFAULT_HUB, held)
    _state["held"][page.url] = [link_first_uses(h, glossary) for h in held]
    return link_first_uses(html, glossary, skip_page=page.url == GLOSSARY)


def _with_chooser(output: str) -> str:
    output = output.replace("</head>", head(list(_state["profiles"]), DEFAULT_HUB) + "</head>", 1)
    return output.replace(_ARTICLE, _ARTICLE + chooser(_state["profiles"], DEFAULT_HUB), 1)


def on_post_page(output: str, page: Any, config: Any) -> str:
    if not page.file.src_path.endswith(".ipynb"):
        output = restore(output, _state["held"].pop(page.url, []))
        return _with_chooser(output)
    output = _CDN_SCRIPT.sub("", output)
    # Material no longer shows mkdocs-jupyter's download button: add ours, and
    # the claims this probe verifies, linked to where the guide makes them.
    probe = Path(page.file.src_path).stem
    ctx = _context(page)
    header = (
        f'<div class="hp-probe-header"><p><a href="{probe}.ipynb" download>Download this probe '
        "notebook</a>.</p>"
        + (
            probe_summary(ctx, probe, _state["shown"].get(probe))
            or "<p>It verifies no claim yet.</p>"
        )
        + "</div>"
    )
    for problem in ctx.problems:
        log.warning("%s: %s", page.file.src_path, problem)
    # After the notebook's first cell (its title and what it does), before the code.
    first = output.find(_FIRST_CELL)
    second = output.find(_CELL, first + 1) if first >= 0 else -1
    if second < 0:
        output = output.replace(_ARTICLE, _ARTICLE + header, 1)
    else:
        output = output[:second] + header + output[second:]
    start, end = output.find(_ARTICLE), output.find("</article>")
    if start >= 0 and end >= 0:
        article = link_first_uses(output[start:end], ctx.link(GLOSSARY))
        output = output[:start] + article + output[end:]
    return _with_chooser(output)
