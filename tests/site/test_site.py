"""The built guide: strict build, links and anchors, published URLs, a real browser.

The site is built once per module with `mkdocs build --strict` from the
committed results, as `nox -s docs` does. Browser checks drive Debian's
Chromium through Playwright (never Playwright's own download).
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree as ET

import nbformat
import pytest
import yaml

from hubprobe.claims.registry import load_claims
from hubprobe.claims.results import load_all, runs_dir
from hubprobe.profiles import list_profiles
from hubprobe.site import browser
from hubprobe.site.hubs import DEFAULT_HUB, hub_order
from hubprobe.site.jargon import TERMS
from hubprobe.site.linkcheck import check_site, page_ids

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = Path(__file__).with_name("published_urls.txt")
QUIET = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
#: Not the default address: the build must take it from the environment.
SITE_URL = "https://guide.example.edu/limits/"
_REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, **QUIET, "HUBPROBE_SITE_URL": SITE_URL},
    )  # fmt: skip
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings)
    return out


def pages(site: Path) -> list[str]:
    return sorted(
        p.parent.relative_to(site).as_posix() + "/"
        for p in site.rglob("index.html")
        if not p.parent.relative_to(site).as_posix().startswith("assets")
    )


def test_links_anchors_and_offline(site: Path) -> None:
    problems = check_site(site)
    assert problems == [], "\n".join(map(str, problems))


def test_sitemap_lists_every_page_at_the_site_url(site: Path) -> None:
    tree = ET.parse(site / "sitemap.xml")
    locs = sorted(
        e.text or "" for e in tree.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")
    )
    expected = sorted(SITE_URL + ("" if url == "./" else url) for url in pages(site))
    assert locs == expected
    home = (site / "index.html").read_text()
    assert f'<link rel="canonical" href="{SITE_URL}">' in home


def test_browser_measurements_are_quoted_on_the_pages(site: Path) -> None:
    """The hook renders <!-- ui: --> shortcodes: the recorded dialog title is on the OOM page."""
    record = json.loads((ROOT / "probes" / "ui" / "whole-server-kill.json").read_text())
    (dialog,) = record["cases"]["jupyterlab"]["dialogs_while_down"][:1]
    page = (site / "explanation" / "silent-oom-kill" / "index.html").read_text()
    assert html.escape(dialog["title"]) in page
    assert "<!-- ui:" not in page
    assert "&lt;!-- ui:" not in page


def test_every_claim_is_on_a_page() -> None:
    claims = load_claims(ROOT / "probes" / "claims.toml")
    text = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    missing = [c.id for c in claims if f"<!-- claim: {c.id} -->" not in text]
    assert missing == []


def _resolve(site: Path, url: str) -> tuple[Path, str]:
    """The HTML file behind a published URL, following mkdocs-redirects stubs."""
    path, _, anchor = url.partition("#")
    target = site / path / "index.html" if path.endswith("/") or not path else site / path
    for _ in range(3):
        if not target.exists():
            break
        m = _REFRESH.search(target.read_text())
        if m is None:
            break
        target = (target.parent / m.group(1).split("#")[0]).resolve() / "index.html"
    return target, anchor


def test_published_urls_and_anchors_still_exist(site: Path) -> None:
    gone = []
    for line in PUBLISHED.read_text().splitlines():
        url = line.split("  #", 1)[0].strip()
        if not url or url.startswith("#"):
            continue
        target, anchor = _resolve(site, url.removeprefix("./"))
        if not target.exists() or (anchor and anchor not in page_ids(target)):
            gone.append(url)
    assert gone == [], "published URLs that no longer resolve (add a redirect): " + ", ".join(gone)


# -- in a real browser ----------------------------------------------------------
needs_browser = pytest.mark.skipif(
    browser.missing() is not None, reason=f"no browser: {browser.missing()}"
)


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[tuple[str, Any]]:
    with browser.serve_dir(site) as base, browser.chromium() as chromium:
        yield base, chromium


@needs_browser
def test_every_page_loads_cleanly(site: Path, served: tuple[str, Any]) -> None:
    base, chromium = served
    bad: list[str] = []
    page = chromium.new_page()
    page.on(
        "console",
        lambda m: bad.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: bad.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: bad.append(f"failed request: {r.url}"))
    page.on(
        "request", lambda r: None if r.url.startswith(base) else bad.append(f"off-site: {r.url}")
    )
    for url in pages(site):
        page.goto(base + url, wait_until="networkidle")
        assert page.locator("h1").count() >= 1, f"{url} has no title"
        if bad:
            break
    page.close()
    assert bad == [], f"{url}: " + "; ".join(bad)


def _search(chromium: Any, base: str, query: str) -> list[str]:
    """The result links (site paths) Material's search gives for ``query``, best first."""
    hrefs: list[str] = []
    # Typed key by key, as a reader does: Material's search does not always see
    # a value set in one go. Its worker may also be slow to start on a busy
    # machine, so the test waits for an answer and, failing one, loads again.
    for _load in range(3):
        page = chromium.new_page()
        page.goto(base, wait_until="networkidle")
        page.locator(".md-search__input").click()
        page.keyboard.type(query, delay=30)
        links = page.locator(".md-search-result__item > a.md-search-result__link")
        for _wait in range(20):
            page.wait_for_timeout(250)
            hrefs = [h for h in (a.get_attribute("href") for a in links.all()) if h]
            if hrefs:
                break
        page.close()
        if hrefs:
            break
    assert hrefs, f"the search never answered {query!r}"
    return [urlsplit(h).path.removeprefix(urlsplit(base).path) for h in hrefs]


def maintainer_pages() -> set[str]:
    """Site paths of the nav's "For maintainers" section, read from mkdocs.yml."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!ENV", lambda _loader, _node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)["nav"]
    section = next(v for item in nav for k, v in item.items() if k == "For maintainers")

    def walk(items: Any) -> set[str]:
        out: set[str] = set()
        for item in items:
            values = item.values() if isinstance(item, dict) else [item]
            for v in values:
                if isinstance(v, list):
                    out |= walk(v)
                else:
                    out.add(str(v).rsplit(".", 1)[0] + "/")
        return out

    return walk(section)


@needs_browser
def test_search_finds_out_of_memory(served: tuple[str, Any]) -> None:
    base, chromium = served
    found = _search(chromium, base, "out of memory")
    assert any("memory" in h or "oom" in h for h in found)


@needs_browser
@pytest.mark.parametrize("query", ["n_jobs", "No space left", "kernel restarting"])
def test_search_answers_instructors_first(served: tuple[str, Any], query: str) -> None:
    base, chromium = served
    maintainers = maintainer_pages()
    assert "probes/parallel/" in maintainers
    assert "reference/cli/" in maintainers
    first = _search(chromium, base, query)[0]
    assert first.split("#")[0] not in maintainers, f"{query!r}: first result {first}"


@needs_browser
@pytest.mark.parametrize("width", [1280, 390])
def test_no_page_scrolls_sideways(site: Path, served: tuple[str, Any], width: int) -> None:
    base, chromium = served
    page = chromium.new_page(viewport={"width": width, "height": 900})
    wide = []
    for url in pages(site):
        page.goto(base + url, wait_until="networkidle")
        scroll, client = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if scroll > client:
            wide.append(f"{url} ({scroll} > {client} px)")
    page.close()
    assert wide == []


@needs_browser
def test_tables_fit_or_scroll_in_their_frame(served: tuple[str, Any]) -> None:
    base, chromium = served
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(base + "reference/claims/", wait_until="networkidle")
    table = page.locator(".hp-claims table")
    assert table.count() == 1
    frame = page.locator(".hp-claims .md-typeset__scrollwrap")
    fits = frame.evaluate("f => f.scrollWidth <= f.clientWidth")
    assert fits, "the claims index's columns fit at 1280 px, with no scrolling"
    page.close()
    phone = chromium.new_page(viewport={"width": 390, "height": 900})
    phone.goto(base, wait_until="networkidle")
    cells = phone.locator(".hp-glance td")
    assert cells.count() == 9
    # Stacked: every cell as wide as the content column, nothing to scroll.
    frame = phone.locator(".hp-glance .md-typeset__scrollwrap")
    assert frame.evaluate("f => f.scrollWidth <= f.clientWidth")
    assert cells.nth(1).evaluate("c => getComputedStyle(c).display") == "block"
    phone.goto(base + "reference/limits-by-hub/", wait_until="networkidle")
    wide = phone.locator(".hp-wide")
    hint = wide.evaluate("w => getComputedStyle(w, '::before').content")
    assert "Scroll the table sideways" in hint
    scrolls = wide.locator(".md-typeset__scrollwrap").evaluate(
        "f => f.scrollWidth > f.clientWidth && getComputedStyle(f).overflowX === 'auto'"
    )
    assert scrolls, "the limits table scrolls inside its frame, under the hint"
    phone.close()


def _plain(copied: str) -> str:
    """Copied text as the box reads: without the written-out addresses and list markers."""
    text = re.sub(r" \(https?://[^)\s]*\)", "", copied)
    text = re.sub(r"(?m)^(- |\d+\. )", "", text)
    return " ".join(text.split())


@needs_browser
def test_every_student_box_has_a_copy_button_that_copies_it(
    site: Path, served: tuple[str, Any]
) -> None:
    base, chromium = served
    context = chromium.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    boxes = 0
    for url in pages(site):
        page.goto(base + url, wait_until="networkidle")
        # Every "For students" box, whatever its classes: none may lack the button.
        titles = page.locator(".admonition > .admonition-title", has_text="For students")
        for title in titles.all():
            box = title.locator("xpath=..")
            button = title.locator("button.hp-copy")
            assert button.count() == 1, f"{url}: a student box without a copy button"
            if not title.is_visible():  # a box for other hubs: choose one of them
                hub = box.evaluate("b => b.closest('.hp-hub').dataset.hub.split(' ')[0]")
                page.select_option("#hp-hub", hub)
            button.click()
            copied = page.evaluate("navigator.clipboard.readText()")
            shown = box.evaluate(
                "b => Array.from(b.children).filter(c => !c.matches('.admonition-title'))"
                ".map(c => c.innerText).join(' ')"
            )
            assert _plain(copied) == " ".join(shown.split()), f"{url}: copied {copied!r}"
            for link in box.locator("a[href]").all():
                href = link.evaluate("a => a.href")
                assert href in copied, f"{url}: the copy leaves out the link {href}"
            boxes += 1
    context.close()
    assert boxes >= 20


#: What a published badge may say: the kind of evidence, or why the claim does not apply.
EVIDENCE = (
    "✔ reproduced in the sandbox under ",
    "✔ measured on a live hub ",
    "⚙ configuration value of ",
    "○ does not apply on ",
    "○ not reproduced for ",
)


@needs_browser
def test_badges_stand_next_to_claims(site: Path, served: tuple[str, Any]) -> None:
    base, chromium = served
    page = chromium.new_page()
    seen: set[str] = set()
    for url in pages(site):
        page.goto(base + url)
        # The badges the reader sees: the default hub's (the others are hidden).
        for badge in page.locator(".hp-badge:visible").all():
            seen.add(badge.get_attribute("data-claim") or "")
            text = badge.inner_text()
            assert text.startswith(EVIDENCE), f"{url}: {text}"
            title = badge.get_attribute("title") or ""
            target, anchor = _resolve(site, urljoin(url, badge.get_attribute("href") or ""))
            if text.startswith("✔ reproduced"):
                assert any(b in title for b in _recorded_backends()), "the backend on hover"
                assert "DataHub" in text, f"{url}: {text} is not the default hub's"
                # It lands on what the probe showed for this claim.
                assert f'<div class="hp-probe-claim" id="{anchor}">' in target.read_text()
            elif text.startswith("⚙"):
                # Where the value comes from: the hub's section of limits by hub.
                assert "Source: " in title
                assert target.parent.name == "limits-by-hub"
                assert anchor == DEFAULT_HUB
                assert anchor in page_ids(target)
            else:
                assert anchor in page_ids(target), f"{url}: {text} links nowhere"
            # The sentence it verifies is in the same block, before the badge.
            before = badge.evaluate(
                "b => { const p = b.closest('p, li, td, .admonition') || b.parentElement;"
                " const r = document.createRange(); r.setStart(p, 0);"
                " r.setEndBefore(b); return r.toString().trim(); }"
            )
            assert before, f"{url}: badge {badge.get_attribute('data-claim')} stands alone"
    page.close()
    # A claim that holds on DataHub is shown to a DataHub reader somewhere;
    # one that does not apply there may stand only in text for other hubs.
    ids = {c.id for c in load_claims(ROOT / "probes" / "claims.toml")}
    results = load_all(ROOT / "probes")[DEFAULT_HUB]["claims"]
    skipped = {c for c in ids if results[c]["status"] == "skipped"}
    assert ids - seen <= skipped, sorted(ids - seen - skipped)


def _shown_run(probe: str) -> Path:
    """The executed run a probe page renders: DataHub's, or the first hub's that ran it."""
    for hub in hub_order(list_profiles()):
        run = runs_dir(ROOT / "probes", hub) / f"{probe}.ipynb"
        if run.exists():
            return run
    raise AssertionError(f"probe {probe} ran under no profile")


def test_probe_pages_number_cells_as_the_kernel_ran_them(site: Path) -> None:
    for source in sorted((ROOT / "probes").glob("*.ipynb")):
        path = _shown_run(source.stem)
        nb = nbformat.read(path, as_version=4)
        page = (site / "probes" / path.stem / "index.html").read_text().replace("\xa0", " ")
        code = [c for c in nb.cells if c.cell_type == "code"]
        for cell in code:
            if cell.execution_count is None:
                outcome = cell.metadata.get("hubprobe", {}).get("outcome")
                assert outcome in ("killed", "dead", "server-died", None), (
                    f"{path.name}: a cell that ran has no execution count"
                )
            else:
                assert f"In [{cell.execution_count}]:" in page, path.name
        assert page.count("In [ ]:") == sum(c.execution_count is None for c in code), path.name


@needs_browser
def test_probe_code_is_never_cut_off(site: Path, served: tuple[str, Any]) -> None:
    base, chromium = served
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    cut = []
    for url in pages(site):
        if not url.startswith("probes/"):
            continue
        page.goto(base + url, wait_until="networkidle")
        # A box clips when it hides overflow and its content is wider than it.
        cut += page.evaluate(
            """url => Array.from(document.querySelectorAll('.jp-InputArea pre')).flatMap(pre => {
                 const clips = [];
                 for (let el = pre; el && !el.classList.contains('jp-Cell'); el = el.parentElement) {
                   const x = getComputedStyle(el).overflowX;
                   if ((x === 'hidden' || x === 'clip') && el.scrollWidth > el.clientWidth)
                     clips.push(url + ': ' + pre.innerText.split('\\n')[0].slice(0, 40));
                 }
                 return clips;
               })""",
            url,
        )
    page.close()
    assert cut == []


def test_jargon_links_to_the_glossary_on_every_page(site: Path) -> None:
    missing = []
    for url in pages(site):
        if url in ("reference/glossary/", "search/"):
            continue
        html = (site / url / "index.html").read_text()
        body = html[html.find("<article") : html.find("</article>")]
        prose = re.sub(r"<(h[1-6]|pre|a)\b.*?</\1>", " ", body, flags=re.DOTALL)
        prose = re.sub(r"<[^>]+>", " ", prose)
        for anchor, rx in TERMS.items():
            if rx.search(prose) and f'glossary/#{anchor}"' not in body:
                missing.append(f"{url}: {anchor}")
    assert missing == []


def _recorded_backends() -> set[str]:
    """The backends the committed results were measured in (the badges say it on hover)."""
    return {
        str(c["backend"])
        for data in load_all(ROOT / "probes").values()
        for c in data["claims"].values()
        if "backend" in c
    }


# -- the hub chooser --------------------------------------------------------------


def _visible(page: Any, selector: str) -> list[str]:
    return [e.inner_text().strip() for e in page.locator(f"{selector}:visible").all()]


@needs_browser
def test_choosing_a_hub_changes_this_page_and_the_next(served: tuple[str, Any]) -> None:
    base, chromium = served
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(base, wait_until="networkidle")
    # The default is DataHub's 1 GiB.
    assert page.locator("#hp-hub").input_value() == DEFAULT_HUB
    memory = page.locator(".hp-glance td").nth(1)
    assert memory.inner_text().startswith("1 GiB")
    page.select_option("#hp-hub", "aalto")
    assert memory.inner_text().startswith("5 GiB"), "the figure changes at once"
    assert "Aalto" in " ".join(_visible(page, ".hp-glance .hp-badge"))
    assert "DataHub" not in " ".join(_visible(page, ".hp-glance .hp-badge"))
    # The next page opens with the same hub, its figures and its text.
    page.goto(base + "explanation/memory-indicator/", wait_until="networkidle")
    assert page.locator("#hp-hub").input_value() == "aalto"
    assert _visible(page, ".hp-config-value")[0] == "5 GiB"
    page.goto(base + "explanation/silent-oom-kill/", wait_until="networkidle")
    text = page.locator("article").inner_text()
    assert "Where one kill takes the kernel alone" in text
    assert "not what this guide expects on Aalto" in text, "Aalto's scope is assumed: both"
    # The 2017 page, chosen, says plainly that it is stale.
    stale = page.locator(".hp-stale-note")
    assert not stale.is_visible()
    page.select_option("#hp-hub", "curriculum-guide")
    assert stale.is_visible()
    assert "no hub follows" in stale.inner_text()
    context.close()
    # A fresh browser shows the default again.
    fresh = chromium.new_context()
    page = fresh.new_page()
    page.goto(base, wait_until="networkidle")
    assert page.locator("#hp-hub").input_value() == DEFAULT_HUB
    assert page.locator(".hp-glance td").nth(1).inner_text().startswith("1 GiB")
    fresh.close()


@needs_browser
def test_without_javascript_datahub_shows(served: tuple[str, Any]) -> None:
    base, chromium = served
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base, wait_until="networkidle")
    assert page.locator(".hp-glance td").nth(1).inner_text().startswith("1 GiB")
    assert not page.locator("#hp-hub").is_visible(), "a list that cannot work is hidden"
    assert page.locator(".hp-chooser .hp-nojs").inner_text() == "UC Berkeley DataHub"
    hidden = page.locator('.hp-hub[data-hub="aalto"]').first
    assert hidden.count() == 1
    assert not hidden.is_visible()
    context.close()


def test_the_hub_is_set_before_the_page_is_drawn(site: Path) -> None:
    for url in pages(site):
        html = (site / url / "index.html").read_text()
        head = html[: html.index("</head>")]
        # In <head>, before any of the body: no first paint with DataHub's figures.
        assert "document.documentElement.setAttribute('data-hub'" in head, url
        assert 'id="hp-hub-rules"' in head, url


def test_ids_are_unique_whatever_the_hub(site: Path) -> None:
    doubled = []
    for path in sorted(site.rglob("*.html")):
        ids = re.findall(r'\sid="([^"]+)"', path.read_text())
        doubled += [f"{path.relative_to(site)}: {i}" for i in set(ids) if ids.count(i) > 1]
    assert doubled == []


def test_search_holds_each_sentence_once(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text())
    text = " ".join(d["text"] for d in index["docs"] if not d["location"].split("#")[0])
    # The home page's memory row as DataHub reads it, and not as other hubs do.
    assert "The whole server is killed" in text
    assert "The kernel is killed and restarted" not in text
    assert "hp-held" not in json.dumps(index)
