"""Post-build check of the built site: links, anchors and offline assets.

``mkdocs build --strict`` validates Markdown links only; notebook pages
(rendered by nbconvert) and raw HTML (our badges, generated tables) are
invisible to it. This reads every HTML file in ``site/`` and checks that
each internal ``href``/``src`` points to a file that exists and, with a
``#fragment``, to an id on that page; and that no page loads a script, style,
font or image from another host, so the site works offline.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["Problem", "check_site", "page_ids", "served_at"]

# Elements whose URL the browser fetches by itself (a plain <a href> it does not).
_FETCHED = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"),
            ("source", "src"), ("video", "src"), ("audio", "src")}  # fmt: skip
# <link rel=...> values that make the browser fetch the URL.
_FETCHING_RELS = {"stylesheet", "icon", "preload", "modulepreload", "manifest", "prefetch"}
_CSS_URL = re.compile(r"url\(\s*['\"]?(https?:)?//")
_CANONICAL = re.compile(r'<link rel="canonical" href="([^"]+)"')


@dataclasses.dataclass(frozen=True)
class Problem:
    page: str
    what: str

    def __str__(self) -> str:
        return f"{self.page}: {self.what}"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[
            tuple[str, str, str]
        ] = []  # (tag, attr, url); fetched ones only for <link>
        self._in_style = False
        self.inline_css: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        rel = dict(attrs).get("rel") or ""
        fetches = tag != "link" or bool(set(rel.split()) & _FETCHING_RELS)
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and (name == "id" or tag == "a"):
                self.ids.add(value)
            if name in ("href", "src"):
                self.links.append((tag if fetches else "a", name, value))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.inline_css.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(errors="replace"))
    return page


def page_ids(path: Path) -> set[str]:
    return _parse(path).ids


def served_at(site: Path) -> str:
    """The path the site is served under (``/hubprobe/``), from the home page's canonical link."""
    home = site / "index.html"
    m = _CANONICAL.search(home.read_text(errors="replace")) if home.exists() else None
    path = urlsplit(m.group(1)).path if m else "/"
    return path if path.endswith("/") else path + "/"


def _target(site: Path, page: Path, url: str, root: str = "/") -> Path | None:
    parts = urlsplit(url)
    rel = unquote(parts.path)
    base = page.parent.relative_to(site).as_posix()
    if rel.startswith("/"):  # root-relative (the 404 page uses them): under the site's path
        if not (rel + "/").startswith(root):
            return None  # outside the site
        joined = posixpath.normpath(rel[len(root) :] or ".")
    elif rel:
        joined = posixpath.normpath(posixpath.join(base, rel))
    else:
        joined = page.relative_to(site).as_posix()
    target = site / joined
    if target.is_dir() or rel.endswith("/"):
        target = target / "index.html"
    return target


def check_site(site: Path) -> list[Problem]:
    problems: list[Problem] = []
    pages = {p: _parse(p) for p in sorted(site.rglob("*.html"))}
    root = served_at(site)
    for path, page in pages.items():
        name = path.relative_to(site).as_posix()
        for tag, attr, url in page.links:
            parts = urlsplit(url)
            if parts.scheme in ("mailto", "data", "javascript", "tel"):
                continue
            if parts.scheme or url.startswith("//"):
                if (tag, attr) in _FETCHED:
                    problems.append(Problem(name, f"loads {url} from another host"))
                continue
            target = _target(site, path, url, root)
            if target is None or not target.exists():
                problems.append(Problem(name, f"broken link {url}"))
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else page_ids(target)
                if unquote(parts.fragment) not in ids:
                    problems.append(Problem(name, f"no anchor #{parts.fragment} in {url or name}"))
        for css in page.inline_css:
            if _CSS_URL.search(css):
                problems.append(Problem(name, "inline CSS loads from another host"))
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m hubprobe.site.linkcheck [SITE_DIR]``: print problems, exit 1 if any."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    site = Path(args[0] if args else "site")
    if not (site / "index.html").exists():
        print(f"sitecheck: no built site in {site}; run `mkdocs build` first", file=sys.stderr)
        return 2
    problems = check_site(site)
    for problem in problems:
        print(problem)
    pages = len(list(site.rglob("*.html")))
    print(f"sitecheck: {pages} pages, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
