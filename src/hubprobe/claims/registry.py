"""The claim registry (``probes/claims.toml``) and the one evaluator.

A claim has a stable id (kebab-case; also its anchor on the site), a one-line
statement, the probe that verifies it, and expectations over the probe's
figures. A claim that holds only for some hubs says when it applies (an
expression over the profile's values and the machine's cores) and why it
does not otherwise; under other profiles it is skipped with that reason. The same :func:`evaluate` serves pytest, the results file and the
site, so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

from hubprobe.claims import expectations
from hubprobe.errors import UsageError
from hubprobe.profiles import Profile

__all__ = [
    "Claim",
    "ClaimVerdict",
    "ClaimsError",
    "evaluate",
    "load_claims",
    "probe_path",
    "skip_reason",
]

_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_KEYS = {"id", "statement", "probe", "expect", "show", "applies", "otherwise", "kind", "timing"}
#: "behaviour": what happens under the limits (the sandbox reproduces it);
#: "configuration": that a hub's configured value is in force, which only a live
#: hub can show (in the sandbox it shows only that the sandbox applied it).
KINDS = ("behaviour", "configuration")


class ClaimsError(UsageError):
    """The registry is malformed; the message names the file and claim."""


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    probe: str
    expect: tuple[str, ...]
    #: Figures the site shows next to the claim (default: those the expectations use).
    show: tuple[str, ...]
    #: When the claim can hold, over ``profile.*`` and ``machine_cpus`` (empty: always).
    applies: str = ""
    #: Why it does not apply, shown as the skip reason.
    otherwise: str = ""
    kind: str = "behaviour"
    #: Its expectations time CPU work: its probe must not share the machine's cores.
    timing: bool = False


@dataclasses.dataclass(frozen=True)
class ClaimVerdict:
    claim: str
    passed: bool
    failures: tuple[str, ...]
    figures: dict[str, Any]


def load_claims(path: Path) -> list[Claim]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        fix = "run from a checkout of hubprobe (the probes are its probes/ folder) or give --probes-dir"
        raise ClaimsError(f"{path}: no claim registry here", fix) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ClaimsError(f"{path}: {exc}") from None
    claims: list[Claim] = []
    seen: set[str] = set()
    for n, raw in enumerate(data.get("claim", []), start=1):
        where = f"{path}: claim #{n} ({raw.get('id', '?')})"
        unknown = set(raw) - _KEYS
        if unknown:
            raise ClaimsError(f"{where}: unknown key(s) {sorted(unknown)}")
        for key in ("id", "statement", "probe", "expect"):
            if key not in raw:
                raise ClaimsError(f"{where}: missing key {key!r}")
        if not _ID.match(raw["id"]) or raw["id"] in seen:
            raise ClaimsError(f"{where}: id must be unique kebab-case")
        if not raw["expect"]:
            raise ClaimsError(f"{where}: a claim with no expectations verifies nothing")
        for expr in raw["expect"]:
            try:
                expectations.names_in(expr)
            except expectations.ExpectationError as exc:
                raise ClaimsError(f"{where}: {exc}") from None
        if raw.get("kind", "behaviour") not in KINDS:
            raise ClaimsError(f"{where}: kind must be one of {', '.join(KINDS)}")
        if bool(raw.get("applies")) != bool(raw.get("otherwise")):
            raise ClaimsError(f"{where}: 'applies' and 'otherwise' (the reason) go together")
        if raw.get("applies"):
            try:
                names = expectations.names_in(raw["applies"])
            except expectations.ExpectationError as exc:
                raise ClaimsError(f"{where}: applies: {exc}") from None
            bad = [n for n in names if not n.startswith("profile.") and n != "machine_cpus"]
            if bad:
                raise ClaimsError(
                    f"{where}: applies may use only profile.* and machine_cpus: {bad}"
                )
        seen.add(raw["id"])
        show = raw.get("show") or [
            name for e in raw["expect"] for name in expectations.names_in(e)
            if not name.startswith("profile.")
        ]  # fmt: skip
        claims.append(
            Claim(
                id=raw["id"],
                statement=" ".join(raw["statement"].split()),
                probe=raw["probe"],
                expect=tuple(raw["expect"]),
                show=tuple(dict.fromkeys(show)),
                applies=raw.get("applies", ""),
                otherwise=" ".join(raw.get("otherwise", "").split()),
                kind=raw.get("kind", "behaviour"),
                timing=raw.get("timing", False) is True,
            )
        )
    return claims


def probe_path(probes_dir: Path, claim: Claim) -> Path:
    return probes_dir / f"{claim.probe}.ipynb"


def _profile_values(profile: Profile) -> dict[str, Any]:
    values = {
        f"profile.{f.name}": getattr(profile, f.name)
        for f in dataclasses.fields(profile)
        if isinstance(getattr(profile, f.name), int | float | str)
    }
    values["profile.blas_threads_setting"] = profile.blas_threads_setting
    return values


def skip_reason(claim: Claim, profile: Profile, machine_cpus: int) -> str | None:
    """Why ``claim`` cannot hold under ``profile`` on this machine; None if it applies."""
    if not claim.applies:
        return None
    values = {**_profile_values(profile), "machine_cpus": machine_cpus}
    return None if expectations.check(claim.applies, values) else claim.otherwise


def evaluate(
    claim: Claim, figures: dict[str, Any], profile: Profile, run_failures: list[str] | None = None
) -> ClaimVerdict:
    """Check every expectation; a failed probe run fails its claims too."""
    values = {**figures, **_profile_values(profile)}
    failures = list(run_failures or [])
    for expr in claim.expect:
        try:
            ok = expectations.check(expr, values)
        except expectations.MissingFigure as exc:
            failures.append(f"{expr}: the probe recorded no figure {exc.args[0]!r}")
            continue
        if not ok:
            used = ", ".join(f"{n}={values.get(n)!r}" for n in expectations.names_in(expr))
            failures.append(f"expected {expr}, got {used}")
    shown = {k: figures[k] for k in claim.show if k in figures}
    return ClaimVerdict(claim.id, not failures, tuple(failures), shown)
