"""Numbers in the guide's pages come from one recorded value and one rule each.

- A measured figure is quoted through its shortcode, never copied by hand, so
  two pages cannot quote two different runs.
- Figures one probe records for the same quantity in two ways (the workers'
  memory as the session counts it and as their RSS adds up) are one quantity
  to a reader: the guide quotes one of them everywhere, or both side by side
  on every page that quotes either.
- The peak-memory rule the guide gives is the one `hubprobe check` applies.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from hubprobe.check.verdict import TIGHT_FRACTION
from hubprobe.claims.registry import load_claims
from hubprobe.claims.results import load_all
from hubprobe.site.render import SHORTCODE, format_figure

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(p for p in (ROOT / "docs").rglob("*.md") if "probes" not in p.parts)
ALL = load_all(ROOT / "probes")
PROBE_OF = {c.id: c.probe for c in load_claims(ROOT / "probes" / "claims.toml")}
#: Words that name how a quantity was measured, not which quantity it is.
MEASURES = re.compile(r"(^|_)(rss|cgroup|memory|usage)(?=_|$)")
FENCE = re.compile(r"^([ \t]*)(```|~~~).*?^\1\2", re.MULTILINE | re.DOTALL)


#: Inline code is a setting (`0.9`, `n_jobs=2`), never a quoted measurement:
#: with six hubs' figures, a setting's value is bound to equal one of them.
INLINE_CODE = re.compile(r"`[^`\n]+`")


def prose(path: Path) -> str:
    """A page's text without code blocks, inline code and shortcodes."""
    return INLINE_CODE.sub(" ", SHORTCODE.sub(" ", FENCE.sub(" ", path.read_text())))


def recorded() -> dict[str, str]:
    """Every measured size, duration and ratio, as the site prints it -> where from."""
    out: dict[str, str] = {}
    sources = [
        (f"probe {p} under {hub}", e.get("figures", {}))
        for hub, data in ALL.items()
        for p, e in data["probes"].items()
    ]
    for where, figures in sources:
        for name, value in figures.items():
            words = set(name.split("_"))
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if words & {"bytes", "seconds"} or isinstance(value, float):
                text = format_figure(name, value)
                # "1.2 s", "71.13 MiB", "0.801": a measurement; "2 GiB" is a setting
                if re.search(r"\d\.\d", text):
                    out.setdefault(text, f"{where}: {name}")
    return out


def test_no_measured_figure_is_copied_by_hand() -> None:
    figures = recorded()
    assert len(figures) > 50
    copied = []
    for path in DOCS:
        text = prose(path)
        for shown, where in figures.items():
            if re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", text):
                copied.append(f"{path.relative_to(ROOT)}: {shown!r} ({where}); use its shortcode")
    assert copied == []


def quoted() -> dict[str, set[tuple[str, str]]]:
    """Page -> the (probe, figure) pairs its figure shortcodes quote."""
    pages: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in DOCS:
        for m in SHORTCODE.finditer(path.read_text()):
            if m.group(1) == "figure":
                claim, _, name = m.group(2).partition(".")
                pages[str(path.relative_to(ROOT))].add((PROBE_OF[claim], name))
    return pages


def test_one_quantity_is_quoted_one_way() -> None:
    pages = quoted()
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for used in pages.values():
        for probe, name in used:
            groups[(probe, MEASURES.sub("", name))].add(name)
    mixed = []
    for (probe, _), names in groups.items():
        if len(names) < 2:
            continue
        for page, used in pages.items():
            here = {n for p, n in used if p == probe and n in names}
            if here and here != names:
                mixed.append(f"{page} quotes {sorted(here)} where others quote {sorted(names)}")
    assert mixed == []


def test_the_rule_catches_two_measures_of_one_quantity() -> None:
    assert MEASURES.sub("", "workers_memory_bytes") == MEASURES.sub("", "workers_rss_bytes")
    assert MEASURES.sub("", "idle_excess_bytes") != MEASURES.sub("", "loaded_excess_bytes")


def test_the_peak_rule_is_the_one_check_applies() -> None:
    rule = f"{TIGHT_FRACTION:.0%}"
    stated, other = [], []
    for path in DOCS:
        text = " ".join(prose(path).split())
        for sentence in re.split(r"(?<=[.;:])\s", text):
            if "peak" not in sentence:
                continue  # another rule: the notice's near-limit threshold, say
            for m in re.finditer(r"(\d+)\s?% of (the|its) (memory )?limit", sentence):
                (stated if f"{m.group(1)}%" == rule else other).append(f"{path.name}: {m[0]}")
        if re.search(r"peak of (about )?half the limit", text):
            other.append(f"{path.name}: a peak of half the limit")
    assert stated, "the guide states the rule"
    assert other == []
