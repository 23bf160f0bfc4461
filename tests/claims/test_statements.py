"""Each claim's statement names only what its probe recorded and checked.

A number in a statement ("5 restarts", "within 5%", "300 s") must be a
constant of one of the claim's expectations, so every run checks it; a size
of the limit ("a 1-CPU limit") must be that of every profile the claim was
verified under (it is skipped, with its reason, under the others); a word of
magnitude ("tens of times", "a fraction of a second") must have the
expectation that makes it true; and a word of frequency ("sometimes") is
refused, because one run of a probe cannot show how often something happens.
Code in backticks (`n_jobs=2`) is a setting, not a figure.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hubprobe.claims.registry import Claim, load_claims
from hubprobe.claims.results import load_all
from hubprobe.profiles import load_profile

PROBES = Path(__file__).resolve().parents[2] / "probes"
CLAIMS = load_claims(PROBES / "claims.toml")
ALL = load_all(PROBES)

#: Words of magnitude -> the pattern one of the claim's expectations must match.
MAGNITUDES = {
    "a fraction of a second": r"seconds\w* < 1\b",
    "more than half a second": r"seconds\w* >= 0\.5\b",
    "within a second": r"seconds\w* <= 1(\.0)?\b",
    "tens of times": r">= 10\b",
    "a few tens of MiB": r"<= 100 \* 1048576",
    "a few hundred MiB": r"\b[2-9]00\b",
    "half the memory limit": r"0\.5 \* profile\.memory_limit_bytes",
    "seconds for": r"seconds\w* >= 1\b",
    "no useful speed-up": r"speedup\w* < 1\.25",
    "no faster": r"speedup\w* <= 1(\.0+)?\b",
    "slower": r"slowdown\w* >= 1\.\d",
    "most of": r">=? 0\.5\b",
}
FREQUENCY = re.compile(r"\b(sometimes|often|usually|rarely|occasionally|mostly)\b", re.IGNORECASE)
#: Versions name the setting a profile models (its oom_scope), not a figure.
VERSIONS = re.compile(r"\bKubernetes \d+(\.\d+)*\+?|\bcgroup v\d\b")
LIMIT_SIZE = re.compile(r"\b(\d+(?:\.\d+)?)-CPU limit")
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10}
NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(\s*%)?(?![\w])|\b(" + "|".join(WORDS) + r")\b",
    re.IGNORECASE,
)


def constants(claim: Claim) -> set[float]:
    """Every number written in the claim's expectations, and the length of every list."""
    found: set[float] = set()
    for expr in claim.expect:
        for node in ast.walk(ast.parse(expr, mode="eval")):
            if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                found.add(float(node.value))
            elif isinstance(node, ast.List):
                found.add(float(len(node.elts)))
    return found


def unbacked(claim: Claim) -> list[str]:
    text = re.sub(r"`[^`]*`", " ", " ".join(claim.statement.split()))
    text = VERSIONS.sub(" ", text)
    problems = [f"{m.group(0)!r}: one run cannot show how often" for m in FREQUENCY.finditer(text)]
    for phrase, pattern in MAGNITUDES.items():
        if phrase in text:
            if not any(re.search(pattern, e) for e in claim.expect):
                problems.append(f"{phrase!r}: no expectation matches {pattern}")
            text = text.replace(phrase, " ")
    verified = [
        hub
        for hub, data in ALL.items()
        if data["claims"].get(claim.id, {}).get("status") == "verified"
    ]
    for m in LIMIT_SIZE.finditer(text):
        if not verified:
            problems.append(f"{m.group(0)!r}: the claim was verified under no profile")
        for hub in verified:
            measured = load_profile(hub).cpu_limit
            if measured != float(m.group(1)):
                problems.append(f"{m.group(0)!r}: the probe ran under {hub}'s {measured}-CPU limit")
    text = LIMIT_SIZE.sub(" ", text)
    known = constants(claim)
    for m in NUMBER.finditer(text):
        if m.group(3):
            value = float(WORDS[m.group(3).lower()])
        else:
            value = float(m.group(1).replace(",", ""))
            if m.group(2):
                value /= 100
        if not any(abs(value - k) <= 1e-9 * max(1.0, abs(k)) for k in known):
            problems.append(f"{m.group(0).strip()!r}: no expectation checks it")
    return problems


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_statement_names_only_checked_figures(claim: Claim) -> None:
    assert unbacked(claim) == []


def _claim(statement: str, *expect: str) -> Claim:
    return Claim("x", statement, "oom", expect, ())


def test_the_rule_catches_what_outruns_the_figures() -> None:
    assert unbacked(_claim("It is sometimes killed too.", "oom_kills >= 1")) == [
        "'sometimes': one run cannot show how often"
    ]
    assert unbacked(_claim("The server gives up after 5 restarts.", "restarts >= 1")) == [
        "'5': no expectation checks it"
    ]
    assert unbacked(_claim("It takes tens of times longer.", "ratio >= 2")) == [
        "'tens of times': no expectation matches >= 10\\b"
    ]
    assert unbacked(_claim("Within 5% of it, in `n_jobs=2` runs.", "abs(r - 1) <= 0.05")) == []
    assert unbacked(_claim("Two hidden layers.", "layers == [256, 128]")) == []
