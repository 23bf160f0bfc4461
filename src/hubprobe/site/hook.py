"""MkDocs hook: thin glue between MkDocs and :mod:`hubprobe.render`.

``on_files`` loads the registry, results and profiles once and finds the page
of every claim; ``on_page_markdown`` renders the shortcodes. Every problem is
logged as a warning, so ``mkdocs build --strict`` fails on an unknown claim
id, a missing, failed or stale result, or a claim that no page makes.
Keeping MkDocs-specific code here keeps a move to another generator cheap.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File

from hubprobe.address import site_url
from hubprobe.claims.registry import Claim, load_claims
from hubprobe.claims.results import claim_status, load_results
from hubprobe.profiles import list_profiles, load_profile
from hubprobe.site.charts import CHART_PROBES, CHARTS, ChartError, make_chart
from hubprobe.site.jargon import link_first_uses
from hubprobe.site.render import SHORTCODE, Context, probe_summary, render

log = logging.getLogger("mkdocs.hooks.hubprobe")

_state: dict[str, Any] = {}


def on_config(config: Any) -> Any:
    root = Path(config["config_file_path"]).parent
    # One address for the sitemap, canonical links and the notice's default.
    try:
        config["site_url"] = site_url()
    except ValueError as exc:
        log.warning("%s", exc)
    probes = root / "probes"
    claims = {c.id: c for c in load_claims(probes / "claims.toml")}
    results = load_results(probes / "results.json")
    measured = {e["profile"] for e in results.get("claims", {}).values()}
    _state.update(
        cache=root / ".cache" / "hubprobe-charts",
        probes=probes,
        claims=claims,
        results=results,
        profiles={name: load_profile(name) for name in list_profiles()},
        measured=min(measured) if len(measured) == 1 else "curriculum-guide",
    )
    # Once per build: each status hashes the probe notebook's source.
    _state["status"] = {c.id: claim_status(results, c, probes) for c in claims.values()}
    if len(measured) > 1:
        log.warning("results come from several profiles (%s): run all probes with one", measured)
    return config


def on_files(files: Any, config: Any) -> Any:
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
    drawn = {}
    for name, (_builder, alt) in CHARTS.items():
        try:
            svg = make_chart(name, _state["results"], _state["probes"], cache=_state["cache"])
        except (ChartError, KeyError, OSError) as exc:
            log.warning("chart %s: %s", name, exc)
            continue
        files.append(File.generated(config, f"assets/charts/{name}.svg", content=svg))
        drawn[name] = alt
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


def _status(claim: Claim) -> str:
    return str(_state["status"][claim.id])


def _context(page: Any) -> Context:
    return Context(
        claims=_state["claims"],
        results=_state["results"],
        status=_status,
        profiles=_state["profiles"],
        measured_profile=_state["measured"],
        page_url=page.url,
        claim_pages=_state["claim_pages"],
        charts=_state["charts"],
        chart_probes=CHART_PROBES,
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if not page.file.src_path.endswith(".md"):
        return markdown
    ctx = _context(page)
    out = render(markdown, ctx)
    for problem in ctx.problems:
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
    return link_first_uses(html, glossary, skip_page=page.url == GLOSSARY)


def on_post_page(output: str, page: Any, config: Any) -> str:
    if not page.file.src_path.endswith(".ipynb"):
        return output
    output = _CDN_SCRIPT.sub("", output)
    # Material no longer shows mkdocs-jupyter's download button: add ours, and
    # the claims this probe verifies, linked to where the guide makes them.
    probe = Path(page.file.src_path).stem
    header = (
        f'<div class="hp-probe-header"><p><a href="{probe}.ipynb" download>Download this probe '
        "notebook</a>.</p>"
        + (probe_summary(_context(page), probe) or "<p>It verifies no claim yet.</p>")
        + "</div>"
    )
    # After the notebook's first cell (its title and what it does), before the code.
    first = output.find(_FIRST_CELL)
    second = output.find(_CELL, first + 1) if first >= 0 else -1
    if second < 0:
        output = output.replace(_ARTICLE, _ARTICLE + header, 1)
    else:
        output = output[:second] + header + output[second:]
    start, end = output.find(_ARTICLE), output.find("</article>")
    if start < 0 or end < 0:
        return output
    article = link_first_uses(output[start:end], _context(page).link(GLOSSARY))
    return output[:start] + article + output[end:]
