"""Fixtures for the check tests; their helpers are in check_helpers.py, importable from here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hubprobe.profiles import load_profile


@pytest.fixture
def small_profile(tmp_path: Path) -> Path:
    """curriculum-guide with 512 MiB of memory, so a kill comes quickly."""
    text = load_profile("curriculum-guide").path.read_text()
    for old, new in (
        ('limit = "2G"', 'limit = "512M"'),
        ('guarantee = "1G"', 'guarantee = "512M"'),
        ('name = "curriculum-guide"', 'name = "small"'),
    ):
        text = text.replace(old, new)
    path = tmp_path / "small.toml"
    path.write_text(text)
    return path
