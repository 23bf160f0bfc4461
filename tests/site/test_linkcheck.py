"""The post-build check on a tiny hand-made site: root-relative links under the site's path."""

from __future__ import annotations

from pathlib import Path

from hubprobe.site.linkcheck import check_site, served_at


def _page(path: Path, body: str, canonical: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    path.write_text(f"<html><head>{head}</head><body>{body}</body></html>")


def test_root_relative_links_resolve_under_the_sites_path(tmp_path: Path) -> None:
    _page(tmp_path / "index.html", '<h1 id="top">x</h1>', "https://guide.example.edu/limits/")
    _page(tmp_path / "a" / "index.html", "a")
    _page(
        tmp_path / "404.html",
        '<a href="/limits/a/">ok</a> <a href="/limits/#top">ok</a>'
        ' <a href="/limits/b/">missing</a> <a href="/a/">outside the site</a>',
    )
    assert served_at(tmp_path) == "/limits/"
    assert [p.what for p in check_site(tmp_path)] == ["broken link /limits/b/", "broken link /a/"]


def test_without_a_canonical_link_the_site_is_at_the_root(tmp_path: Path) -> None:
    _page(tmp_path / "index.html", '<a href="/a/">a</a>')
    _page(tmp_path / "a" / "index.html", "a")
    assert served_at(tmp_path) == "/"
    assert check_site(tmp_path) == []
