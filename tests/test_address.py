"""The guide's address: one default, overridden by $HUBPROBE_SITE_URL."""

from __future__ import annotations

import pytest

from hubprobe import address


def test_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(address.ENV_SITE_URL, raising=False)
    assert address.site_url() == address.DEFAULT_SITE_URL
    monkeypatch.setenv(address.ENV_SITE_URL, "https://guide.example.edu/limits")
    assert address.site_url() == "https://guide.example.edu/limits/", "always ends in /"


@pytest.mark.parametrize("bad", ["guide.example.edu", "file:///srv/site/", "https://"])
def test_not_an_address_says_what_to_set(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(address.ENV_SITE_URL, bad)
    with pytest.raises(ValueError, match=r"HUBPROBE_SITE_URL=.*published at"):
        address.site_url()


def test_page_url() -> None:
    assert address.page_url("/explanation/x/", "https://a.example/g") == (
        "https://a.example/g/explanation/x/"
    )
    assert address.page_url("p/") == address.DEFAULT_SITE_URL + "p/"
