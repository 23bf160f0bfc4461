"""Link the first use of each piece of jargon on a page to its glossary entry.

Pure str -> str on a page's rendered HTML. A reader who lands on any page
from a Piazza link meets "RSS" or ``MEM_LIMIT`` once with a link to what it
means; later uses stay plain. Text inside links, headings, code blocks,
scripts, buttons and SVG is never touched (a heading is not a first use: it
is read before the sentence that explains it); inline ``code`` is, so
``MEM_LIMIT`` is linked too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["TERMS", "link_first_uses"]

#: Glossary anchor -> the words that use the term (case-sensitive where an
#: acronym or a variable is meant).
TERMS: Mapping[str, re.Pattern[str]] = {
    "rss": re.compile(r"\bRSS\b"),
    "sigkill": re.compile(r"\bSIGKILL(ed)?\b"),
    "blas": re.compile(r"\bBLAS\b"),
    "mem-limit": re.compile(r"\bMEM_LIMIT\b"),
    "cgroup": re.compile(r"\bcgroups?\b"),
    "oom-kill": re.compile(r"\bOOM[- ]kill(s|ed)?\b|\bout-of-memory kills?\b"),
    "throttling": re.compile(r"\bthrottl(ing|ed)\b"),
    "culling": re.compile(r"\bcull(ing|ed|s)?\b"),
    "guarantee": re.compile(r"\bguarantee[sd]?\b"),
}

#: Elements whose text is never linked.
_SKIP = {"a", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "script", "style", "button", "svg",
         "textarea", "label", "nav", "title"}  # fmt: skip
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}  # fmt: skip
_TOKEN = re.compile(r"<!--.*?-->|<[^>]*>", re.DOTALL)
_TAG = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9-]*)[^>]*?(/?)\s*>")


def link_first_uses(page_html: str, glossary_url: str, skip_page: bool = False) -> str:
    """``page_html`` with each term's first use linked to ``glossary_url#anchor``."""
    if skip_page:
        return page_html
    todo = dict(TERMS)
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(page_html):
        out.append(_link(page_html[pos : m.start()], stack, todo, glossary_url))
        out.append(m.group(0))
        _track(m.group(0), stack)
        pos = m.end()
    out.append(_link(page_html[pos:], stack, todo, glossary_url))
    return "".join(out)


def _track(token: str, stack: list[str]) -> None:
    m = _TAG.match(token)
    if m is None:
        return  # a comment or a doctype
    closing, name, self_closing = m.group(1), m.group(2).lower(), m.group(3)
    if closing:
        if name in stack:
            while stack and stack.pop() != name:
                pass
    elif name not in _VOID and not self_closing:
        stack.append(name)


def _link(text: str, stack: list[str], todo: dict[str, re.Pattern[str]], url: str) -> str:
    if not text.strip() or not todo or _SKIP.intersection(stack):
        return text
    hits = sorted(
        (m.start(), m.end(), anchor) for anchor, rx in todo.items() if (m := rx.search(text))
    )
    out, pos = [], 0
    for start, end, anchor in hits:
        if start < pos:
            continue  # overlaps a term linked just before; it stays for a later use
        out.append(text[pos:start])
        out.append(f'<a class="hp-term" href="{url}#{anchor}">{text[start:end]}</a>')
        pos = end
        del todo[anchor]
    out.append(text[pos:])
    return "".join(out)
