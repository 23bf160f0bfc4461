"""The built guide: strict build, links and anchors, published URLs, a real browser.

The site is built once per module with `mkdocs build --strict` from the
committed results, as `nox -s docs` does. Browser checks drive Debian's
Chromium through Playwright (never Playwright's own download).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from hubprobe.claims.registry import load_claims
from hubprobe.site import browser
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


@needs_browser
def test_search_finds_out_of_memory(served: tuple[str, Any]) -> None:
    base, chromium = served
    titles: list[str] = []
    # Now and then (one page load in three, here) Material's search worker never
    # answers on that page and the box keeps saying "Type to start searching";
    # a reader opens the page again, and so does the test, up to six times.
    for _load in range(6):
        page = chromium.new_page()
        page.goto(base)
        box = page.locator(".md-search__input")
        box.click()
        for attempt in range(3):
            box.fill(f"memory {attempt}")  # the same text twice is ignored as unchanged
            page.wait_for_timeout(150)
            box.fill("out of memory")
            page.wait_for_timeout(500)
            titles = page.locator(".md-search-result__item").all_inner_texts()
            if titles:
                break
        page.close()
        if titles:
            break
    assert titles, "the search never answered"
    assert any("memory" in t.lower() for t in titles)


@needs_browser
def test_badges_stand_next_to_claims(site: Path, served: tuple[str, Any]) -> None:
    base, chromium = served
    page = chromium.new_page()
    seen = 0
    for url in pages(site):
        page.goto(base + url)
        for badge in page.locator(".hp-badge").all():
            seen += 1
            assert "verified" in badge.inner_text(), f"{url}: {badge.inner_text()}"
            # The sentence it verifies is in the same block, before the badge.
            before = badge.evaluate(
                "b => { const r = document.createRange(); r.setStart(b.parentElement, 0);"
                " r.setEndBefore(b); return r.toString().trim(); }"
            )
            assert before, f"{url}: badge {badge.get_attribute('data-claim')} stands alone"
    page.close()
    assert seen >= len(load_claims(ROOT / "probes" / "claims.toml"))
