"""The registry file itself: well-formed, every probe used, every claim backed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubprobe.claims.registry import ClaimsError, evaluate, load_claims
from hubprobe.profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]
PROBES = ROOT / "probes"


def test_every_claim_has_its_probe_and_every_probe_a_claim() -> None:
    claims = load_claims(PROBES / "claims.toml")
    used = {c.probe for c in claims}
    notebooks = {p.stem for p in PROBES.glob("*.ipynb")}
    assert used - notebooks == set(), "claims whose probe notebook is missing"
    assert notebooks - used == set(), "probes that assert nothing (no claim uses them)"


def test_ids_are_unique_kebab_case() -> None:
    claims = load_claims(PROBES / "claims.toml")
    assert len({c.id for c in claims}) == len(claims)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[claim]]\nid = "A b"\nstatement = "s"\nprobe = "p"\nexpect = ["x == 1"]\n',
            "kebab-case",
        ),
        ('[[claim]]\nid = "a"\nstatement = "s"\nprobe = "p"\nexpect = []\n', "verifies nothing"),
        ('[[claim]]\nid = "a"\nstatement = "s"\nprobe = "p"\n', "missing key 'expect'"),
        ('[[claim]]\nid = "a"\nstatement = "s"\nprobe = "p"\nexpect = ["x =="]\n', "cannot parse"),
        ('[[claim]]\nid = "a"\nstatment = "s"\nprobe = "p"\nexpect = ["x"]\n', "unknown key"),
    ],
)
def test_bad_registry_is_named(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "claims.toml"
    path.write_text(body)
    with pytest.raises(ClaimsError, match=message):
        load_claims(path)


def test_evaluate_reports_figures_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "claims.toml"
    path.write_text(
        '[[claim]]\nid = "a"\nstatement = "s"\nprobe = "p"\n'
        'expect = ["oom_kills >= 1", "peak >= 0.98 * profile.memory_limit_bytes", "gone == 1"]\n'
    )
    (claim,) = load_claims(path)
    verdict = evaluate(claim, {"oom_kills": 0, "peak": 5}, load_profile("curriculum-guide"))
    assert not verdict.passed
    assert verdict.failures[0] == "expected oom_kills >= 1, got oom_kills=0"
    assert "peak=5" in verdict.failures[1]
    assert "profile.memory_limit_bytes=2147483648" in verdict.failures[1]
    assert "recorded no figure 'gone'" in verdict.failures[2]
    assert verdict.figures == {"oom_kills": 0, "peak": 5}
