"""The expectation evaluator: what it allows, what it refuses, how it fails."""

from __future__ import annotations

import pytest

from hubprobe.claims.expectations import ExpectationError, MissingFigure, check, names_in

FIG = {"oom_kills": 1, "peak": 2000, "profile.memory_limit_bytes": 2048, "statuses": ["restarting"]}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("oom_kills >= 1", True),
        ("oom_kills >= 2", False),
        ("peak >= 0.95 * profile.memory_limit_bytes", True),
        ("peak >= 0.99 * profile.memory_limit_bytes", False),
        ("0 < oom_kills < 2", True),
        ("statuses == ['restarting']", True),
        ("'dead' not in statuses", True),
        ("abs(peak - profile.memory_limit_bytes) <= 48", True),
        ("oom_kills == 1 and not peak > 3000", True),
        ("max(oom_kills, 5) == 5 or False", True),
    ],
)
def test_check(expr: str, expected: bool) -> None:
    assert check(expr, FIG) is expected


def test_missing_figure_is_named() -> None:
    with pytest.raises(MissingFigure) as exc:
        check("restarts == 1", FIG)
    assert exc.value.args[0] == "restarts"


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('true')",
        "oom_kills.__class__",
        "[x for x in statuses]",
        "oom_kills >",
    ],
)
def test_refuses_anything_else(expr: str) -> None:
    with pytest.raises((ExpectationError, MissingFigure)):
        check(expr, FIG)


def test_names_in() -> None:
    assert names_in("peak >= 0.98 * profile.memory_limit_bytes and max(a, b) > 0") == [
        "peak",
        "profile.memory_limit_bytes",
        "a",
        "b",
    ]
