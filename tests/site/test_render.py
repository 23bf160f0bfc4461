"""Shortcodes into badges, figures and tables (pure str -> str)."""

from __future__ import annotations

from hubprobe.claims.registry import Claim
from hubprobe.profiles import list_profiles, load_profile
from hubprobe.site.render import Context, format_figure, probe_summary, render

CLAIM = Claim(
    "oom-kernel-restarts", "The kernel restarts.", "oom", ("oom_kills >= 1",), ("oom_kills",)
)
RESULTS = {
    "claims": {
        "oom-kernel-restarts": {
            "status": "verified",
            "date": "2026-11-26T10:00:00+00:00",
            "backend": "cgroup1",
            "profile": "curriculum-guide",
            "figures": {"oom_kills": 1},
        }
    },
    "probes": {"oom": {"figures": {"seconds_to_restarting": 5.43, "peak_memory_bytes": 2**31}}},
}


def ctx(status: str = "verified", page: str = "how-to/unstuck/") -> Context:
    return Context(
        claims={CLAIM.id: CLAIM},
        results=RESULTS,
        status=lambda _c: status,
        profiles={n: load_profile(n) for n in list_profiles()},
        measured_profile="curriculum-guide",
        page_url=page,
        claim_pages={CLAIM.id: "explanation/silent-oom-kill/"},
    )


def test_badge_links_to_the_probe_and_carries_the_anchor() -> None:
    c = ctx()
    out = render(
        "It restarts.<!-- claim: oom-kernel-restarts --> Again.<!-- claim: oom-kernel-restarts -->",
        c,
    )
    assert out.count('id="oom-kernel-restarts"') == 1, "one anchor per page"
    assert out.count('class="hp-badge hp-verified"') == 2
    # To what the probe showed for this claim, not to the top of its notebook.
    assert 'href="../../probes/oom/#oom-kernel-restarts"' in out
    # In words on the page; the backend only on hover.
    assert ">✔ measured in the sandbox · curriculum-guide profile · 2026-11-26</a>" in out
    assert "in the cgroup1 sandbox with the curriculum-guide profile" in out
    assert c.problems == []


def test_not_verified_is_a_problem_and_says_so() -> None:
    for status in ("failed", "stale", "not-run"):
        c = ctx(status)
        out = render("x<!-- claim: oom-kernel-restarts -->", c)
        assert f"hp-{status}" in out
        assert c.problems
        assert status.replace("-", " ") in c.problems[0]


def test_unknown_claim_figure_profile_and_table_are_problems() -> None:
    c = ctx()
    render(
        "<!-- claim: no-such -->"
        "<!-- figure: oom-kernel-restarts.nope --><!-- figure: nope.x -->"
        "<!-- profile: memory_nope --><!-- table: nope -->",
        c,
    )
    assert len(c.problems) == 5
    assert "unknown claim id 'no-such'" in c.problems[0]


def test_figures_and_profile_values_are_formatted() -> None:
    c = ctx(page="")
    out = render(
        "<!-- figure: oom-kernel-restarts.seconds_to_restarting --> "
        "<!-- figure: oom-kernel-restarts.peak_memory_bytes --> "
        "<!-- profile: memory_limit_bytes --> <!-- profile: datahub.cpu_limit -->",
        c,
    )
    assert ">5.4 s<" in out
    assert ">2 GiB<" in out
    assert "2 GiB 4 CPU" in out
    assert c.problems == []


def test_code_with_braces_is_left_alone() -> None:
    text = "```python\nd = {'a': {{1}}}\n```\n<!-- not a shortcode -->"
    assert render(text, ctx()) == text


def test_tables() -> None:
    c = ctx(page="reference/claims/")
    claims = render("<!-- table: claims -->", c)
    assert '<a href="../../explanation/silent-oom-kill/#oom-kernel-restarts">' in claims
    assert "oom_kills = 1" in claims
    profiles = render("<!-- table: profiles -->", c)
    assert "| `datahub` | 1 GiB | 512 MiB | 4 | 0.05 | 10 GiB | the kernel |" in profiles


def test_format_figure() -> None:
    assert format_figure("x", True) == "yes"
    assert format_figure("kernel_statuses", ["restarting"]) == "restarting"
    assert format_figure("ratio", 1.04712) == "1.05"
    assert format_figure("x", None) == "none"


def test_probe_summary_says_what_the_probe_showed() -> None:
    c = ctx(page="probes/oom/")
    c.charts, c.chart_probes = {"oom-memory": "memory rising"}, {"oom-memory": "oom"}
    out = probe_summary(c, "oom")
    assert '<div class="hp-probe-claim" id="oom-kernel-restarts">' in out
    assert "<strong>The kernel restarts.</strong>" in out
    assert "<td><code>oom_kills</code></td><td>1</td>" in out
    assert '<a href="../../explanation/silent-oom-kill/#oom-kernel-restarts">' in out
    assert '<img src="../../assets/charts/oom-memory.svg" alt="memory rising">' in out
    assert 'title="cgroup1 sandbox"' in out
    assert probe_summary(c, "storage") == "", "a probe with no claim has nothing to show"
