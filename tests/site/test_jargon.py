"""The first use of each piece of jargon on a page links to the glossary."""

from __future__ import annotations

from hubprobe.site.jargon import link_first_uses

G = "../reference/glossary/"


def test_first_use_only_and_never_in_headings_links_or_code_blocks() -> None:
    page = (
        '<h2 id="rss">RSS</h2><p>See <a href="x">RSS here</a>.</p>'
        "<pre><code>echo $MEM_LIMIT</code></pre>"
        "<p>The RSS of a process; RSS again. The <code>MEM_LIMIT</code> variable.</p>"
    )
    out = link_first_uses(page, G)
    assert out.count('class="hp-term"') == 2
    assert (
        '<p>The <a class="hp-term" href="../reference/glossary/#rss">RSS</a> of a process; RSS again.'
        in out
    )
    assert (
        '<code><a class="hp-term" href="../reference/glossary/#mem-limit">MEM_LIMIT</a></code>'
        in out
    )
    assert '<h2 id="rss">RSS</h2>' in out
    assert "<pre><code>echo $MEM_LIMIT</code></pre>" in out


def test_several_terms_in_one_text_and_the_glossary_itself() -> None:
    page = "<p>A cgroup sends SIGKILL; BLAS threads are throttled.</p>"
    out = link_first_uses(page, G)
    for anchor in ("cgroup", "sigkill", "blas", "throttling"):
        assert f'href="{G}#{anchor}"' in out
    assert link_first_uses(page, G, skip_page=True) == page
