"""Size strings as JupyterHub's ByteSpecification reads them (binary units)."""

from __future__ import annotations

import pytest

from hubprobe.units import format_bytes, parse_bytes

GiB = 2**30
MiB = 2**20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 * MiB),
        ("2G", 2 * GiB),
        ("10G", 10 * GiB),
        ("1T", 2**40),
        ("64K", 64 * 2**10),
        ("2Gi", 2 * GiB),
        ("512Mi", 512 * MiB),
        ("2147483648", 2 * GiB),
        ("0", 0),
        ("0G", 0),
        ("1.5G", int(1.5 * GiB)),
        ("2056M", 2056 * MiB),
    ],
)
def test_parse_bytes_accepts(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2GB", "'2G'"),
        ("2 gigs", "'2G'"),
        ("-1G", "negative"),
        ("", "empty"),
        ("1.5.G", "not a number"),
        ("2 G", "space"),
        ("2g", "'2G'"),
        ("1.5", "fractional"),
        ("G", "number"),
        ("2X", "K, M, G or T"),
        ("+2G", "'+'"),
    ],
)
def test_parse_bytes_rejects_with_a_fix(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=r".") as info:
        parse_bytes(text)
    message = str(info.value)
    assert says in message
    assert "\n" not in message
    # Every message tells what to write instead, after a "; ".
    assert "; " in message


def test_parse_bytes_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="string"):
        parse_bytes(2048)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1000, "1000 B"),
        (64 * 2**10, "64 KiB"),
        (512 * MiB, "512 MiB"),
        (2 * GiB, "2 GiB"),
        (int(1.5 * GiB), "1.5 GiB"),
        (10 * GiB, "10 GiB"),
        (64 * GiB, "64 GiB"),
        (2**40, "1 TiB"),
        (2056 * MiB, "2056 MiB"),
        (2 * GiB + 1, "2 GiB"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_format_bytes_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_bytes(-1)


@pytest.mark.parametrize("text", ["512M", "2G", "1.5G", "64K", "1T", "3Gi"])
def test_round_trip_through_format(text: str) -> None:
    n = parse_bytes(text)
    number, unit = format_bytes(n).split()
    assert parse_bytes(number + unit[0]) == n


def test_measured_bytes_are_rounded() -> None:
    assert format_bytes(int(323.93 * 2**20), measured=True) == "324 MiB"
    assert format_bytes(int(1.625 * 2**30), measured=True) == "1.62 GiB"
