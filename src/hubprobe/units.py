"""Byte sizes as JupyterHub reads them, and back to short human text.

JupyterHub's ``ByteSpecification`` trait (``mem_limit``, ``mem_guarantee``)
takes a number with a suffix K, M, G or T and multiplies by powers of 1024:
"2G" is 2 GiB, not 2 * 10**9 bytes. Two spellings JupyterHub's own trait
does not take are accepted too, with the meaning they have elsewhere:
"2Gi" (Kubernetes manifests: the same 2 GiB) and a whole byte count as a
string ("2147483648", what a YAML integer means to the trait). Anything
else ("2GB", "2 gigs") is rejected rather than guessed at: reading "2GB" as
decimal or binary changes a limit by 7 %.
"""

from __future__ import annotations

import re

__all__ = ["format_bytes", "parse_bytes"]

_MULTIPLIERS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}

# Accepted: digits with an optional decimal part, then an optional binary unit.
# A bare number is a byte count, so it must be whole.
_SIZE = re.compile(r"(?P<num>\d+(?:\.\d+)?|\.\d+)(?P<unit>[KMGT]i?)?")

# Loose split used only to explain a rejection: sign, number-ish, rest.
_LOOSE = re.compile(r"\s*(?P<sign>[-+]?)\s*(?P<num>[0-9.]*)(?P<space>\s*)(?P<unit>.*?)\s*")

_EXAMPLES = "e.g. '2G', '512M', '2Gi' or a whole number of bytes such as '2147483648'"


def parse_bytes(text: str) -> int:
    """Return the number of bytes in a JupyterHub-style size string.

    >>> parse_bytes("2G"), parse_bytes("512Mi"), parse_bytes("1.5G")
    (2147483648, 536870912, 1610612736)

    Raises ``ValueError`` naming what is wrong and what to write instead.
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(_explain(text))
    num, unit = match["num"], match["unit"]
    if unit is None:
        if "." in num:
            msg = (
                f"{text!r} is a fractional number of bytes; give whole bytes, "
                f"or add a unit, e.g. '{num}G'"
            )
            raise ValueError(msg)
        return int(num)
    multiplier = _MULTIPLIERS[unit[0]]
    if "." not in num:
        return int(num) * multiplier
    # Same arithmetic as JupyterHub (int(float(num) * multiplier)), so a
    # decimal size gives the byte count the hub would compute.
    return int(float(num) * multiplier)


def _explain(text: str) -> str:
    """Build the error message for a size string that did not parse."""
    if not text.strip():
        return f"empty size; write a size, {_EXAMPLES}, or '0'"
    loose = _LOOSE.fullmatch(text)
    # _LOOSE matches any string; the assert keeps mypy and readers honest.
    assert loose is not None
    sign, num, space, unit = loose["sign"], loose["num"], loose["space"], loose["unit"]
    if sign == "-":
        return f"{text!r} is negative; sizes are >= 0, {_EXAMPLES}"
    if sign == "+":
        return f"{text!r} has a '+' sign; drop it, e.g. '{num}{unit}'"
    if not num:
        return f"{text!r} does not start with a number; {_EXAMPLES}"
    if num.count(".") > 1 or num.endswith("."):
        return f"{text!r}: {num!r} is not a number; use digits and at most one '.', e.g. '1.5G'"
    letter = unit[:1].upper()
    if letter in _MULTIPLIERS:
        fix = f"'{num}{letter}' or '{num}{letter}i'"
        if space and _SIZE.fullmatch(f"1{unit}"):
            return f"{text!r} has a space before the unit; write {fix}"
        # Covers "2GB", "2g", "2 gigs": JupyterHub knows only K/M/G/T, all binary.
        return (
            f"{text!r}: unit {unit!r} is not understood; write {fix} "
            f"(binary: 1{letter} = 1024**{list(_MULTIPLIERS).index(letter) + 1} bytes)"
        )
    return (
        f"{text!r}: unit {unit!r} is not understood; use K, M, G or T (or Ki ... Ti), {_EXAMPLES}"
    )


_UNITS = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def format_bytes(n: int, *, measured: bool = False) -> str:
    """Return a short binary size: "2 GiB", "512 MiB", "1.5 GiB", "0 B".

    Uses the largest unit that gives a number >= 1. If that number is not
    exact to two decimals but the next smaller unit is exact and short
    (2056 MiB), the smaller unit is used, so hub settings like "2056M" read
    back as written.

    ``measured``: a measurement, rounded as a reader wants it ("324 MiB",
    "1.62 GiB"): a setting stays exact, a measurement needs no 0.01 MiB.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        msg = f"format_bytes needs an int number of bytes, not {type(n).__name__}"
        raise TypeError(msg)
    if n < 0:
        msg = f"negative byte count {n}; sizes are >= 0"
        raise ValueError(msg)
    if measured:
        return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
    candidates = [(name, size) for name, size in _UNITS if n >= size]
    if not candidates:
        return f"{n} B"
    for name, size in candidates[:2]:
        # The smaller unit only while it stays short: a measured 183.45 MiB
        # is exact in KiB too, but "187856 KiB" reads worse.
        if (n * 100) % size == 0 and n / size < 10_000:
            return f"{_short(n / size)} {name}"
    name, size = candidates[0]
    return f"{_short(n / size)} {name}"


def _short(value: float) -> str:
    """Two decimals at most, trailing zeros dropped: 2.0 -> "2", 1.50 -> "1.5"."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
