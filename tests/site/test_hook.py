"""The hook's own logic: which shipped profile a live hub's results belong to."""

from __future__ import annotations

import json
from pathlib import Path

from hubprobe.profiles import list_profiles, load_profile
from hubprobe.site.hook import _live_results


def test_live_results_belong_to_the_profile_of_their_hub(tmp_path: Path) -> None:
    profiles = {n: load_profile(n) for n in list_profiles()}
    data = {"format": 3, "hub": {"url": "https://datahub.berkeley.edu/"}, "claims": {}}
    (tmp_path / "datahub.berkeley.edu.json").write_text(json.dumps(data))
    other = {"format": 3, "hub": {"url": "https://hub.example.edu/"}, "claims": {}}
    (tmp_path / "hub.example.edu.json").write_text(json.dumps(other))
    live = _live_results(tmp_path, profiles)
    # DataHub's title names its address; a hub no profile names is no profile's.
    assert list(live) == ["datahub"]
    assert live["datahub"]["hub"]["url"] == "https://datahub.berkeley.edu/"
