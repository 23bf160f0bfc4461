"""The charts drawn from the committed results: legends outside the plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from hubprobe.claims.results import load_results
from hubprobe.site.charts import CHARTS, draw, make_chart

PROBES = Path(__file__).resolve().parents[2] / "probes"


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_legend_covers_no_bar_or_line(name: str) -> None:
    fig = draw(name, load_results(PROBES / "results.json"), PROBES)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert legends, "every chart explains its colours"
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                drawn = [*ax.patches, *ax.lines]
                assert drawn
                for artist in drawn:
                    other = artist.get_window_extent(renderer)
                    assert not box.overlaps(other), f"{name}: the legend covers {artist}"
                assert not box.overlaps(ax.get_window_extent(renderer)), "legend inside the plot"
    finally:
        plt.close(fig)


def test_cached_chart_is_the_drawn_one_and_follows_the_results(tmp_path: Path) -> None:
    results = load_results(PROBES / "results.json")
    drawn = make_chart("parallel", results, PROBES)
    assert make_chart("parallel", results, PROBES, cache=tmp_path) == drawn
    (first,) = tmp_path.glob("parallel-*.svg")
    assert make_chart("parallel", results, PROBES, cache=tmp_path) == drawn, "from the cache"
    changed = json.loads(json.dumps(results))
    changed["probes"]["parallel"]["figures"]["joblib_seconds_n1"] = 9.99
    assert "9.99 s" in make_chart("parallel", changed, PROBES, cache=tmp_path)
    assert [p.name for p in tmp_path.glob("parallel-*.svg")] != [first.name], "redrawn"
    assert len(list(tmp_path.glob("parallel-*.svg"))) == 1, "the old picture is gone"
