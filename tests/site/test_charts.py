"""The charts drawn from each hub's committed results: legends outside the plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from hubprobe.claims.results import load_all, runs_dir
from hubprobe.site.charts import CHARTS, ChartError, draw, make_chart

PROBES = Path(__file__).resolve().parents[2] / "probes"
RESULTS = load_all(PROBES)


def _drawable() -> list[tuple[str, str]]:
    """(chart, hub) for every hub whose results hold what the chart draws."""
    found = []
    for name in sorted(CHARTS):
        for hub, data in RESULTS.items():
            try:
                plt.close(draw(name, data, runs_dir(PROBES, hub)))
            except (ChartError, KeyError, OSError):
                continue
            found.append((name, hub))
    return found


DRAWABLE = _drawable()


def test_every_chart_is_drawn_for_the_default_hub_or_another() -> None:
    assert {name for name, _ in DRAWABLE} == set(CHARTS)


@pytest.mark.parametrize(("name", "hub"), DRAWABLE)
def test_legend_covers_no_bar_or_line(name: str, hub: str) -> None:
    fig = draw(name, RESULTS[hub], runs_dir(PROBES, hub))
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
    results = RESULTS["datahub"]
    runs = runs_dir(PROBES, "datahub")
    drawn = make_chart("parallel", results, runs)
    assert make_chart("parallel", results, runs, cache=tmp_path) == drawn
    (first,) = tmp_path.glob("parallel-*.svg")
    assert make_chart("parallel", results, runs, cache=tmp_path) == drawn, "from the cache"
    changed = json.loads(json.dumps(results))
    changed["probes"]["parallel"]["figures"]["joblib_seconds_n1"] = 9.99
    assert "9.99 s" in make_chart("parallel", changed, runs, cache=tmp_path)
    assert [p.name for p in tmp_path.glob("parallel-*.svg")] != [first.name], "redrawn"
    assert len(list(tmp_path.glob("parallel-*.svg"))) == 1, "the old picture is gone"
