"""What stands behind a sentence, for one hub: the words of its badge.

A behaviour reproduced in the sandbox under the hub's profile, a measurement
on the live hub, a configuration value with its published source, or the
reason the claim does not apply there. Also the :class:`Context` the
renderer works in, and the values a ``when`` block may test.
"""

from __future__ import annotations

import dataclasses
import html
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from hubprobe.claims import expectations
from hubprobe.claims.registry import Claim
from hubprobe.profiles import Profile
from hubprobe.site.hubs import DEFAULT_HUB, hub_short, possessive, variants
from hubprobe.units import format_bytes

__all__ = [
    "ICONS",
    "LABELS",
    "SOURCE_KEYS",
    "Context",
    "attribute",
    "badge_words",
    "format_figure",
    "profile_values",
    "source",
]

LABELS = {
    "verified": "verified",
    "failed": "failed",
    "stale": "stale",
    "not-run": "not run",
    "skipped": "skipped",
}
ICONS = {"verified": "✔", "failed": "✘", "stale": "↻", "not-run": "?", "skipped": "○"}
#: Profile field -> its key in the profile's ``sources``.
SOURCE_KEYS = {
    "memory_limit_bytes": "memory.limit",
    "memory_guarantee_bytes": "memory.guarantee",
    "swap_bytes": "memory.swap",
    "oom_scope": "memory.oom_scope",
    "cpu_limit": "cpu.limit",
    "cpu_guarantee": "cpu.guarantee",
    "storage_bytes": "storage.size",
    "storage_per_user_quota": "storage.per_user_quota",
    "pids_limit": "pids.limit",
    "node_cpus": "node.cpus",
    "node_memory_bytes": "node.memory",
    "interface": "interface.default",
    "kernel_idle_seconds": "culling.kernel_idle_seconds",
    "server_idle_seconds": "culling.server_idle_seconds",
}
_CLAIM_ID = re.compile(r"\b[a-z0-9]+(?:-[a-z0-9]+)+\b")


@dataclasses.dataclass
class Context:
    claims: Mapping[str, Claim]
    results: Mapping[str, Mapping[str, Any]]  # profile -> its results file's data
    status: Callable[[Claim, str], str]  # (claim, profile) -> verified / failed / skipped / ...
    profiles: Mapping[str, Profile]  # in the chooser's order
    page_url: str  # this page's URL, e.g. "how-to/unstuck/"
    default: str = DEFAULT_HUB
    #: profile -> results measured on a live hub (probes/hub-results/)
    live: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    claim_pages: Mapping[str, str] = dataclasses.field(default_factory=dict)  # id -> page URL
    #: chart name -> hub -> alt text (the hubs it could be drawn for)
    charts: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    chart_probes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> probe
    problems: list[str] = dataclasses.field(default_factory=list)
    #: The hubs the text being rendered is for (inside a ``when`` block: some).
    scope: Sequence[str] | None = None

    @property
    def hubs(self) -> list[str]:
        return list(self.scope if self.scope is not None else self.profiles)

    def link(self, target: str) -> str:
        """A relative link from this page to a site URL like ``probes/oom/``."""
        rel = posixpath.relpath(target or ".", self.page_url or ".")
        if (target == "" or target.endswith("/")) and not rel.endswith("/"):
            rel += "/"
        return rel

    def entry(self, hub: str, claim_id: str) -> Mapping[str, Any]:
        return dict(self.results.get(hub, {}).get("claims", {}).get(claim_id, {}))

    def per_hub(self, make: Callable[[str], str], *, block: bool = False) -> str:
        return variants(make, self.hubs, block=block, within=self.hubs)

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)


def format_figure(name: str, value: Any) -> str:
    """A figure as a reader wants it: sizes in GiB/MiB, times in seconds."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(format_figure(name, v) for v in value) or "none"
    words = set(name.split("_"))
    if isinstance(value, int | float) and "bytes" in words:
        return format_bytes(int(value))
    if isinstance(value, int | float) and "seconds" in words:
        if value >= 120 and value % 60 == 0:
            return f"{value / 60:g} min"
        return f"{value:.2g} s" if value < 1 else f"{value:.1f} s"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def attribute(text: str) -> str:
    # Escaped for an attribute; a backtick too, else Markdown turns `code` into <code>.
    return html.escape(text).replace("`", "&#96;")


def profile_values(profile: Profile, machine_cpus: int | None = None) -> dict[str, Any]:
    """The names a ``when`` (or a claim's ``applies``) may use for one profile."""
    values: dict[str, Any] = {
        f"profile.{f.name}": getattr(profile, f.name)
        for f in dataclasses.fields(profile)
        if isinstance(getattr(profile, f.name), int | float | str)
    }
    values["profile.blas_threads_setting"] = profile.blas_threads_setting
    scope = profile.sources.get("memory.oom_scope", "")
    # Known only where a source says what the hub does; inferred or assumed otherwise.
    values["profile.oom_scope_inferred"] = scope.startswith(("Inferred", "Assumption"))
    values["machine_cpus"] = profile.node_cpus if machine_cpus is None else machine_cpus
    return values


def source(profile: Profile, field: str) -> str:
    key = SOURCE_KEYS.get(field, field)
    return profile.sources.get(key, "no source recorded")


def _live_entry(ctx: Context, hub: str, claim_id: str) -> tuple[Mapping[str, Any], str] | None:
    data = ctx.live.get(hub)
    if not data:
        return None
    entry = data.get("claims", {}).get(claim_id)
    if not entry or entry.get("status") != "verified":
        return None
    host = urlsplit(str(data.get("hub", {}).get("url", ""))).hostname or "a live hub"
    return entry, host


def badge_words(ctx: Context, claim: Claim, hub: str) -> tuple[str, str, str, str]:
    """(css class, words on the page, words on hover, link target) for one hub."""
    status = ctx.status(claim, hub)
    entry = ctx.entry(hub, claim.id)
    profile = ctx.profiles[hub]
    date = str(entry.get("date", ""))[:10]
    href = ctx.link(f"probes/{claim.probe}/") + f"#{claim.id}"
    where = f" in the {entry['backend']} sandbox" if entry.get("backend") else ""
    live = _live_entry(ctx, hub, claim.id)
    if status == "verified" and live is not None:
        live_entry, host = live
        text = f"✔ measured on a live hub ({host}) · {str(live_entry.get('date', ''))[:10]}"
        return "hp-live", text, f"also reproduced{where} on {date}", href
    if status == "verified" and claim.kind == "configuration":
        # The sandbox only applied the value the profile names: a fact about the
        # sandbox, not about the hub. What stands behind it is the hub's config.
        fields = [
            n.removeprefix("profile.")
            for e in claim.expect
            for n in expectations.names_in(e)
            if n.startswith("profile.")
        ]
        cited = "; ".join(dict.fromkeys(source(profile, f) for f in fields))
        title = f"Source: {cited}. The sandbox applied this value{where} on {date}."
        href = ctx.link("reference/limits-by-hub/") + f"#{hub}"
        return "hp-config", f"⚙ configuration value of {possessive(hub)} profile", title, href
    if status == "verified":
        text = f"✔ reproduced in the sandbox under {possessive(hub)} profile · {date}"
        return "hp-verified", text, f"verified on {date}{where}", href
    if status == "skipped":
        reason = str(entry.get("reason") or claim.otherwise)
        named = [c for c in _CLAIM_ID.findall(reason) if c in ctx.claims and c != claim.id]
        if named and named[0] in ctx.claim_pages:
            href = ctx.link(ctx.claim_pages[named[0]]) + f"#{named[0]}"
        # A claim that would hold on the hub's own nodes, but not on the machine
        # that ran the probes (too few cores), is not one that does not apply.
        on_hub = not claim.applies or expectations.check(claim.applies, profile_values(profile))
        if on_hub:
            return "hp-skipped", f"○ not reproduced for {hub_short(hub)} here: {reason}", "", href
        return "hp-skipped", f"○ does not apply on {hub_short(hub)}: {reason}", "", href
    words = {
        "failed": "failed in the sandbox",
        "stale": "probe or profile changed since it ran",
        "not-run": "not measured yet",
    }[status]
    return f"hp-{status}", f"{ICONS[status]} {words} under {possessive(hub)} profile", "", href
