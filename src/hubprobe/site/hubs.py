"""One page, every hub: the variants the hub chooser switches between.

Each shortcode that depends on the hub (a figure, a badge, a profile value, a
chart, a ``when`` block) renders one variant per hub, wrapped in an element
with ``class="hp-hub"`` and ``data-hub="<hub> [<hub> ...]"`` (hubs whose
variants are equal share one); the CSS shows only the chosen hub's.

Why not Material's linked content tabs: a tab set is a block with a row of
labels, so it cannot put one figure inside a sentence, and six tab rows on
every paragraph would bury the text. A variant per hub, hidden by one CSS
rule and switched by one attribute on ``<html>``, can sit anywhere, and the
choice is set in ``<head>`` before anything is drawn, so there is no flicker.
With JavaScript off, no attribute is set and the default hub's variants show.

Search: :func:`hold` cuts the other hubs' variants out of a page's HTML
before the search plugin reads it (leaving a comment in their place) and
:func:`restore` puts them back into the written page, so the search index
holds each sentence once, as the default hub says it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from hubprobe.profiles import Profile
from hubprobe.units import format_bytes

__all__ = [
    "DEFAULT_HUB",
    "chooser",
    "head",
    "hold",
    "hub_name",
    "hub_order",
    "hub_short",
    "possessive",
    "restore",
    "variants",
]

DEFAULT_HUB = "datahub"
#: localStorage key of the reader's choice.
STORAGE_KEY = "hubprobe.hub"

#: How the guide names each shipped hub: in the chooser, and in running text.
_NAMES = {
    "datahub": ("UC Berkeley DataHub", "DataHub"),
    "data8": ("UC Berkeley Data 8 hub", "Data 8"),
    "data100": ("UC Berkeley Data 100 hub", "Data 100"),
    "dsmlp": ("UC San Diego DSMLP", "DSMLP"),
    "aalto": ("Aalto University JupyterHub", "Aalto"),
    "curriculum-guide": ("the original curriculum guide (2017)", "the 2017 guide"),
}
#: Chooser order: the default, the other Berkeley hubs, other campuses, the old page last.
_ORDER = ["datahub", "data8", "data100", "dsmlp", "aalto"]
_LAST = ["curriculum-guide"]
#: What the chooser says when the stale 2017 page is chosen.
STALE_NOTE = (
    "These are the figures of the 2017 curriculum guide page, which no hub follows "
    "today: Berkeley's hubs give other limits{example}. Use them only to read that "
    "old page."
)


def hub_name(profile: str) -> str:
    """The hub's full name, as the chooser lists it."""
    return _NAMES.get(profile, (profile, profile))[0]


def hub_short(profile: str) -> str:
    """The hub's name in running text ("DataHub", "the 2017 guide")."""
    return _NAMES.get(profile, (profile, profile))[1]


def possessive(profile: str) -> str:
    """ "DataHub's", "the 2017 guide's"."""
    return hub_short(profile) + "'s"


def hub_order(names: Iterable[str], default: str = DEFAULT_HUB) -> list[str]:
    """The profiles in chooser order: the default first, the 2017 page last."""
    names = list(names)
    known = [n for n in [default, *_ORDER] if n in names]
    tail = [n for n in _LAST if n in names and n not in known]
    rest = sorted(n for n in names if n not in known and n not in tail)
    return list(dict.fromkeys(known + rest + tail))


def variants(
    make: Callable[[str], str],
    hubs: Sequence[str],
    *,
    block: bool = False,
    within: Sequence[str] | None = None,
) -> str:
    """One variant per hub, hubs with equal HTML sharing one element.

    ``within``: the hubs the surrounding block is shown for; a variant that
    covers all of them needs no wrapper (the block already hides it).
    """
    groups: dict[str, list[str]] = {}
    for hub in hubs:
        groups.setdefault(make(hub), []).append(hub)
    if len(groups) == 1 and set(hubs) >= set(within if within is not None else hubs):
        return next(iter(groups))
    tag = "div" if block else "span"
    return "".join(
        f'<{tag} class="hp-hub" data-hub="{" ".join(names)}">{text}</{tag}>'
        for text, names in groups.items()
    )


_OPEN = re.compile(r'<(span|div) class="hp-hub[^"]*" data-hub="([^"]*)"[^>]*>')
_HELD = re.compile(r"<!--hp-held-(\d+)-->")


def _element_end(page: str, tag: str, start: int) -> int:
    """The index just after the tag that closes the element opened before ``start``."""
    rx = re.compile(rf"<(/?){tag}\b[^>]*>")
    depth = 1
    for m in rx.finditer(page, start):
        depth += -1 if m.group(1) else 1
        if depth == 0:
            return m.start()
    return -1


def hold(page: str, default: str, held: list[str]) -> str:
    """``page`` with the inside of every variant the default hub does not show cut out.

    The cut HTML is appended to ``held``; a ``<!--hp-held-N-->`` comment marks
    its place for :func:`restore`. Variants inside a cut one go with it.
    """
    out: list[str] = []
    pos = 0
    for m in _OPEN.finditer(page):
        if m.start() < pos:
            continue  # inside a variant cut already
        if default in m.group(2).split():
            continue
        end = _element_end(page, m.group(1), m.end())
        if end < 0:
            continue
        out.append(page[pos : m.end()])
        out.append(f"<!--hp-held-{len(held)}-->")
        held.append(page[m.end() : end])
        pos = end
    out.append(page[pos:])
    return "".join(out)


def restore(page: str, held: Sequence[str]) -> str:
    """Put back what :func:`hold` cut out."""
    return _HELD.sub(lambda m: held[int(m.group(1))], page)


def head(hubs: Sequence[str], default: str = DEFAULT_HUB) -> str:
    """What goes into every page's ``<head>``: the rules that hide the other
    hubs' variants, and the script that sets the chosen hub before the body
    is drawn (so the page never shows one hub's figures and then another's).
    """
    rules = [f'html:not([data-hub]) .hp-hub:not([data-hub~="{default}"])']
    rules += [f'html[data-hub="{h}"] .hp-hub:not([data-hub~="{h}"])' for h in hubs]
    css = ",\n".join(rules) + " { display: none !important; }\n"
    css += "html:not([data-hub]) .hp-chooser select { display: none; }\n"
    css += "html[data-hub] .hp-chooser .hp-nojs { display: none; }\n"
    script = (
        f"(function () {{ var hubs = {json.dumps(list(hubs))}, hub = null;"
        f" try {{ hub = localStorage.getItem({json.dumps(STORAGE_KEY)}); }} catch (e) {{}}"
        f" if (hubs.indexOf(hub) < 0) {{ hub = {json.dumps(default)}; }}"
        " document.documentElement.setAttribute('data-hub', hub); })();"
    )
    return f'<style id="hp-hub-rules">\n{css}</style>\n<script>{script}</script>\n'


def chooser(profiles: Mapping[str, Profile], default: str = DEFAULT_HUB) -> str:
    """The hub chooser at the top of every page (its script is in hubprobe.js)."""
    options = "".join(
        f'<option value="{html.escape(name)}"{" selected" if name == default else ""}>'
        f"{html.escape(hub_name(name))}</option>"
        for name in profiles
    )
    stale = [n for n in profiles if n in _LAST]
    example = ""
    if default in profiles and stale:
        now, then = profiles[default], profiles[stale[0]]
        example = (
            f" ({hub_short(default)}: {format_bytes(now.memory_limit_bytes)} of memory, "
            f"not {format_bytes(then.memory_limit_bytes)})"
        )
    text = html.escape(STALE_NOTE.format(example=example), quote=False)
    note = "".join(
        f'<p class="hp-hub hp-stale-note" data-hub="{name}">{text}</p>' for name in stale
    )
    # The inline script sets the list to the stored choice before it is drawn.
    sync = (
        "<script>document.getElementById('hp-hub').value = "
        "document.documentElement.getAttribute('data-hub');</script>"
    )
    return (
        '<div class="hp-chooser"><label for="hp-hub">Figures and advice for</label> '
        f'<select id="hp-hub" data-storage-key="{STORAGE_KEY}">{options}</select>{sync}'
        f'<span class="hp-nojs">{html.escape(hub_name(default))}</span>{note}</div>'
    )
