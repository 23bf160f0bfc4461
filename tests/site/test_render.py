"""Shortcodes into badges, figures, per-hub text and tables (pure str -> str)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubprobe.claims.registry import Claim, load_claims
from hubprobe.claims.results import claim_status, load_all
from hubprobe.profiles import list_profiles, load_profile
from hubprobe.site.hubs import hold, hub_order, restore, variants
from hubprobe.site.render import (
    Context,
    badge_words,
    format_figure,
    probe_summary,
    render,
    result_problems,
)

PROBES = Path(__file__).resolve().parents[2] / "probes"
CLAIM = Claim(
    "oom-kernel-restarts", "The kernel restarts.", "oom", ("oom_kills >= 1",), ("oom_kills",),
    applies="profile.oom_scope == 'process'",
    otherwise="On this hub one kill ends the whole server: see oom-whole-server.",
)  # fmt: skip
WHOLE = Claim("oom-whole-server", "The server dies.", "oom-whole-server", ("oom_kills >= 1",), ())
LIMIT = Claim(
    "memory-limit", "The limit is the profile's.", "limits",
    ("memory_limit_bytes == profile.memory_limit_bytes",), ("memory_limit_bytes",),
    kind="configuration",
)  # fmt: skip
PROFILES = {n: load_profile(n) for n in hub_order(list_profiles())}


def _entry(profile: str, **figures: object) -> dict[str, object]:
    return {
        "status": "verified",
        "date": "2026-11-26T10:00:00+00:00",
        "backend": "cgroup1",
        "profile": profile,
        "figures": figures,
    }


RESULTS = {
    "curriculum-guide": {
        "claims": {
            "oom-kernel-restarts": _entry("curriculum-guide", oom_kills=1),
            "memory-limit": _entry("curriculum-guide", memory_limit_bytes=2**31),
        },
        "probes": {"oom": {"figures": {"seconds_to_restarting": 5.43, "peak_memory_bytes": 2**31}}},
    },
    "datahub": {
        "claims": {
            "oom-kernel-restarts": {
                "status": "skipped",
                "reason": "On this hub one kill ends the whole server: see oom-whole-server.",
                "date": "2026-11-26T10:00:00+00:00",
            },
            "memory-limit": _entry("datahub", memory_limit_bytes=2**30),
        },
        "probes": {},
    },
}


def ctx(
    status: str = "verified", page: str = "how-to/unstuck/", hubs: tuple[str, ...] = ()
) -> Context:
    def status_of(claim: Claim, hub: str) -> str:
        entry = RESULTS.get(hub, {}).get("claims", {}).get(claim.id)
        if entry is not None and entry["status"] == "skipped":
            return "skipped"
        return status

    profiles = {n: p for n, p in PROFILES.items() if not hubs or n in hubs}
    return Context(
        claims={c.id: c for c in (CLAIM, WHOLE, LIMIT)},
        results=RESULTS,
        status=status_of,
        profiles=profiles,
        page_url=page,
        claim_pages={
            CLAIM.id: "explanation/silent-oom-kill/",
            WHOLE.id: "explanation/silent-oom-kill/",
        },
    )


TWO = ("datahub", "curriculum-guide")


def test_badge_links_to_the_probe_and_carries_the_anchor() -> None:
    c = ctx(hubs=("curriculum-guide",))
    out = render(
        "It restarts.<!-- claim: oom-kernel-restarts --> Again.<!-- claim: oom-kernel-restarts -->",
        c,
    )
    assert out.count('id="oom-kernel-restarts"') == 1, "one anchor per page"
    assert out.count('class="hp-badge hp-verified"') == 2
    # To what the probe showed for this claim, not to the top of its notebook.
    assert 'href="../../probes/oom/#oom-kernel-restarts"' in out
    # In words on the page; the backend only on hover.
    assert ">✔ reproduced in the sandbox under the 2017 guide's profile · 2026-11-26</a>" in out
    assert "in the cgroup1 sandbox" in out
    assert "cgroup1" not in re.sub(r'title="[^"]*"', "", out)
    assert c.problems == []


def test_one_variant_per_hub_and_one_anchor_whatever_the_hub() -> None:
    c = ctx(hubs=TWO)
    out = render("It restarts.<!-- claim: oom-kernel-restarts -->", c)
    assert out.count('id="oom-kernel-restarts"') == 1
    assert out.startswith('It restarts.<span class="hp-claim" id="oom-kernel-restarts">')
    assert '<span class="hp-hub" data-hub="datahub">' in out
    assert '<span class="hp-hub" data-hub="curriculum-guide">' in out
    # Skipped with its reason, linking to the claim that holds there.
    assert (
        ">○ does not apply on DataHub: On this hub one kill ends the whole server: "
        "see oom-whole-server.</a>" in out
    )
    assert 'href="../../explanation/silent-oom-kill/#oom-whole-server"' in out
    assert c.problems == [], "a skipped claim with a reason is no problem"


def test_equal_variants_share_one_element() -> None:
    c = ctx(hubs=("data8", "data100", "datahub"))
    out = render("<!-- profile: storage_bytes -->", c)
    assert "data-hub" not in out, "the three hubs' storage is 10 GiB from one source: no variants"
    out = variants(
        lambda h: "4 GiB" if h == "data100" else "1 GiB", ["datahub", "data8", "data100"]
    )
    assert out == (
        '<span class="hp-hub" data-hub="datahub data8">1 GiB</span>'
        '<span class="hp-hub" data-hub="data100">4 GiB</span>'
    )


def test_not_verified_is_a_problem_and_says_so() -> None:
    for status in ("failed", "stale", "not-run"):
        c = ctx(status, hubs=("curriculum-guide",))
        out = render("x<!-- claim: oom-kernel-restarts -->", c)
        assert f"hp-{status}" in out
        assert c.problems
        assert status.replace("-", " ") in c.problems[0]
        assert "curriculum-guide profile" in c.problems[0]


def test_a_configuration_value_is_never_a_verified_fact_about_the_hub() -> None:
    c = ctx(hubs=TWO)
    out = render("<!-- claim: memory-limit -->", c)
    text = re.sub(r"<[^>]+>", " ", out)
    assert "configuration value of DataHub's profile" in text
    assert "verified" not in text
    assert "measured" not in text
    assert "reproduced" not in text
    # Where the number comes from: the profile's source, on hover and by link.
    assert "deployments/datahub/config/common.yaml" in out
    assert 'href="../../reference/limits-by-hub/#datahub"' in out
    assert "hp-config" in out
    assert "hp-verified" not in out


def test_live_hub_results_say_so() -> None:
    c = ctx(hubs=("curriculum-guide",))
    c.live = {
        "curriculum-guide": {
            "hub": {"url": "https://hub.example.edu/"},
            "claims": {"oom-kernel-restarts": {"status": "verified", "date": "2026-12-01T00:00"}},
        }
    }
    out = render("x<!-- claim: oom-kernel-restarts -->", c)
    assert ">✔ measured on a live hub (hub.example.edu) · 2026-12-01</a>" in out


def test_unknown_claim_figure_profile_and_table_are_problems() -> None:
    c = ctx(hubs=("curriculum-guide",))
    render(
        "<!-- claim: no-such -->"
        "<!-- figure: oom-kernel-restarts.nope --><!-- figure: nope.x -->"
        "<!-- profile: memory_nope --><!-- table: nope -->",
        c,
    )
    assert len(c.problems) == 5
    assert "unknown claim id 'no-such'" in c.problems[0]


def test_figures_and_profile_values_are_formatted() -> None:
    c = ctx(page="", hubs=("curriculum-guide", "datahub"))
    out = render(
        "<!-- figure: oom-kernel-restarts.seconds_to_restarting --> "
        "<!-- figure: oom-kernel-restarts.peak_memory_bytes --> "
        "<!-- profile: memory_limit_bytes --> <!-- profile: datahub.cpu_limit -->",
        c,
    )
    assert ">5.4 s<" in out
    assert ">2 GiB<" in out
    assert '<span class="hp-hub" data-hub="curriculum-guide"><span class="hp-config-value"' in out
    assert re.sub(r"<[^>]+>", "", out).endswith("1 GiB2 GiB 4 CPU"), "DataHub first, then each hub"
    assert "configuration value — source: ds-modules/curriculum-guide" in out
    assert c.problems == []


def test_a_figure_where_the_claim_does_not_apply_says_not_measured() -> None:
    c = ctx(hubs=TWO)
    out = render("<!-- figure: oom-kernel-restarts.oom_kills -->", c)
    assert '<span class="hp-hub" data-hub="datahub"><span class="hp-figure hp-unmeasured"' in out
    assert ">not measured<" in out
    assert c.problems == []


def test_when_blocks_show_for_the_hubs_they_fit() -> None:
    c = ctx(hubs=TWO)
    text = (
        "Intro.\n\n<!-- when: profile.oom_scope == 'process' -->\n"
        "The kernel restarts.<!-- claim: oom-kernel-restarts -->\n<!-- end when -->\n\n"
        "On <!-- when: profile.storage_per_user_quota -->your own disk<!-- end when -->.\n"
    )
    out = render(text, c)
    block = '<div class="hp-hub hp-when" data-hub="curriculum-guide" markdown>'
    assert block in out
    # Inside, only the hubs the block is for: no variant (and no skip) for DataHub.
    assert "does not apply" not in out
    assert '<span class="hp-hub" data-hub' not in out
    # The anchor stands outside the block, so it is there whatever hub is chosen.
    anchor = out.index('<div class="hp-anchor" id="oom-kernel-restarts"></div>')
    assert anchor < out.index(block)
    assert out.count('id="oom-kernel-restarts"') == 1
    assert (
        'On <span class="hp-hub hp-when" data-hub="curriculum-guide">your own disk</span>.' in out
    )
    assert c.problems == []


def test_a_when_that_fits_no_hub_or_does_not_parse_is_a_problem() -> None:
    c = ctx(hubs=TWO)
    render("<!-- when: profile.cpu_limit > 100 -->x<!-- end when -->", c)
    render("<!-- when: profile.cpu_limit >>> 1 -->x<!-- end when -->", c)
    assert len(c.problems) == 2
    assert "no hub profile fits" in c.problems[0]


def test_inferred_oom_scope_is_known_to_when() -> None:
    c = ctx(hubs=("datahub", "dsmlp"))
    out = render("<!-- when: profile.oom_scope_inferred -->inferred<!-- end when -->", c)
    assert 'data-hub="datahub">inferred' in out, "DataHub's scope is inferred, DSMLP's documented"


def test_code_with_braces_is_left_alone() -> None:
    text = "```python\nd = {'a': {{1}}}\n```\n<!-- not a shortcode -->"
    assert render(text, ctx()) == text


def test_tables() -> None:
    c = ctx(page="reference/claims/", hubs=TWO)
    claims = render("<!-- table: claims -->", c)
    assert '<a href="../../explanation/silent-oom-kill/#oom-kernel-restarts">' in claims
    assert "oom_kills = 1" in claims
    assert "✔ the 2017 guide" in claims, "every hub's status"
    assert "○ DataHub" in claims, "every hub's status"
    profiles = render("<!-- table: profiles -->", c)
    assert (
        "| [DataHub](#datahub) `datahub` | 1 GiB | 512 MiB | 4 | 0.05 "
        "| a shared volume, no per-user quota | the whole server (inferred) |" in profiles
    )
    assert "| 10 GiB | the kernel (inferred) |" in profiles, "the 2017 page: a volume per user"


def test_format_figure() -> None:
    assert format_figure("x", True) == "yes"
    assert format_figure("kernel_statuses", ["restarting"]) == "restarting"
    assert format_figure("ratio", 1.04712) == "1.05"
    assert format_figure("x", None) == "none"


def test_probe_summary_says_what_the_probe_showed() -> None:
    c = ctx(page="probes/oom/", hubs=TWO)
    c.charts = {"oom-memory": {"curriculum-guide": "memory rising"}}
    c.chart_probes = {"oom-memory": "oom"}
    out = probe_summary(c, "oom", shown="curriculum-guide")
    assert '<div class="hp-probe-claim" id="oom-kernel-restarts">' in out
    assert "<strong>The kernel restarts.</strong>" in out
    assert "<td><code>oom_kills</code></td><td>1</td>" in out
    assert '<a href="../../explanation/silent-oom-kill/#oom-kernel-restarts">' in out
    assert (
        '<div class="hp-hub" data-hub="curriculum-guide"><figure class="hp-chart">'
        '<img src="../../assets/charts/oom-memory-curriculum-guide.svg" alt="memory rising">' in out
    )
    assert "No chart for DataHub" in out
    assert 'title="cgroup1 sandbox"' in out
    assert "as it ran under the 2017 guide's profile (it does not run under DataHub's)" in out
    assert probe_summary(c, "storage") == "", "a probe with no claim has nothing to show"


def test_hold_keeps_other_hubs_out_and_restore_puts_them_back() -> None:
    page = (
        '<p>A <span class="hp-hub" data-hub="datahub">1 GiB</span>'
        '<span class="hp-hub" data-hub="aalto"><span class="x">5 GiB</span></span>.</p>'
        '<div class="hp-hub hp-when" data-hub="aalto data8"><p>Aalto <span>text</span></p>'
        '<div class="hp-hub" data-hub="aalto">inner</div></div><p>end</p>'
    )
    held: list[str] = []
    cut = hold(page, "datahub", held)
    assert "1 GiB" in cut
    assert "5 GiB" not in cut
    assert "Aalto" not in cut
    assert "inner" not in cut
    assert "end" in cut
    assert restore(cut, held) == page


# -- every badge the committed results give ------------------------------------------
CLAIMS = load_claims(PROBES / "claims.toml")
ALL = load_all(PROBES)
WORDS = {
    "verified": ("✔ reproduced in the sandbox under ", "⚙ configuration value of "),
    "skipped": ("○ does not apply on ", "○ not reproduced for "),
    "failed": ("✘ failed in the sandbox",),
    "stale": ("↻ probe or profile changed",),
    "not-run": ("? not measured yet",),
}


@pytest.mark.parametrize("hub", list(PROFILES))
def test_every_badge_says_its_status_in_words(hub: str) -> None:
    data = ALL.get(hub, {})
    c = Context(
        claims={x.id: x for x in CLAIMS},
        results=ALL,
        status=lambda claim, h: claim_status(ALL.get(h, {}), claim, PROBES, PROFILES[h]),
        profiles=PROFILES,
        page_url="",
    )
    for claim in CLAIMS:
        status = c.status(claim, hub)
        css, text, _hover, _href = badge_words(c, claim, hub)
        assert text.startswith(WORDS[status]), f"{claim.id} under {hub}: {status} but {text!r}"
        if status == "skipped":
            reason = data["claims"][claim.id]["reason"]
            assert text.endswith(reason), f"{claim.id} under {hub}: the reason is said"
        if claim.kind == "configuration" and status == "verified":
            # The sandbox applying a value shows nothing about the hub.
            assert "verified" not in text, text
            assert "measured" not in text, text
            assert css != "hp-verified"


def test_when_blocks_nest_and_an_unclosed_one_is_a_problem() -> None:
    c = ctx(hubs=("datahub", "aalto", "dsmlp"))
    out = render(
        "<!-- when: profile.oom_scope == 'container' -->\n"
        "Whole server<!-- when: profile.oom_scope_inferred --> (inferred)<!-- end when -->.\n"
        "<!-- end when -->\n",
        c,
    )
    assert '<div class="hp-hub hp-when" data-hub="datahub dsmlp" markdown>' in out
    assert 'Whole server<span class="hp-hub hp-when" data-hub="datahub"> (inferred)</span>.' in out
    assert c.problems == []
    render("<!-- when: profile.cpu_limit > 1 -->x", c)
    render("x<!-- end when -->", c)
    assert len(c.problems) == 2


def test_every_claim_and_profile_pair_is_checked_whatever_the_pages() -> None:
    c = ctx(hubs=TWO)
    assert result_problems(c) == [], "verified or skipped with a reason: a clean build"
    for status in ("failed", "stale", "not-run"):
        problems = result_problems(ctx(status, hubs=TWO))
        # oom-kernel-restarts is skipped under DataHub: two claims there, three under 2017.
        assert len(problems) == 5, problems
        assert all(status.replace("-", " ") in p for p in problems)


def test_a_chart_the_machine_could_not_show_for_the_hub_says_so() -> None:
    c = ctx(page="", hubs=TWO)
    c.charts = {"parallel": {"datahub": "times", "curriculum-guide": "times"}}
    c.chart_probes = {"parallel": "parallel"}
    c.results = {
        hub: {**RESULTS[hub], "probes": {"parallel": {"environment": {"machine_cpus": "2"}}}}
        for hub in TWO
    }
    out = render("<!-- chart: parallel -->", c)
    datahub, old = out.split('<div class="hp-hub" data-hub="curriculum-guide">')
    assert "Measured on a machine of 2 cores, no more than DataHub's CPU limit" in datahub
    assert "<figcaption>" not in old, "a 1-CPU limit on 2 cores: the quota is what binds"
