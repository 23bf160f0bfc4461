"""Charts from measured data, as SVG text, for the guide.

Each chart reads only what a probe recorded (the results file's figures, or
the per-cell samples in an executed probe notebook), so a picture can never
drift from the measurement. Matplotlib with the Agg backend, SVG text kept as
text (small files, the site's own font), no timestamps (reproducible).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import nbformat

from hubprobe.files import write_atomic

__all__ = ["CHARTS", "CHART_PROBES", "TIMING_CHARTS", "ChartError", "draw", "make_chart"]

MiB = 2**20


class ChartError(ValueError):
    """The data a chart needs was not recorded; run the probe."""


def _figure(width: float = 6.4, height: float = 3.2) -> Any:
    import matplotlib as mpl

    mpl.use("Agg")
    mpl.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "hubprobe", "font.size": 10})
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def _legend(fig: Any, ncols: int) -> None:
    """Below the plot, outside it: a legend inside the axes can cover a bar or a line."""
    fig.legend(loc="outside lower center", ncols=ncols, frameon=False)


def oom_memory(results: Mapping[str, Any], probes: Path) -> Any:
    """Session memory over time in the cell that ran out, with the limit drawn."""
    nb = nbformat.read(probes / "oom.ipynb", as_version=4)
    killed = [
        c.metadata["hubprobe"]
        for c in nb.cells
        if c.metadata.get("hubprobe", {}).get("outcome") == "killed"
    ]
    if not killed or not killed[0].get("memory_samples"):
        raise ChartError("probes/oom.ipynb has no killed cell with memory samples")
    meta = killed[0]
    t = [s[0] for s in meta["memory_samples"]]
    mem = [s[1] / MiB for s in meta["memory_samples"]]
    limit = (
        results["probes"]["oom"]["figures"].get("memory_limit_bytes") or meta["peak_memory_bytes"]
    )
    fig, ax = _figure()
    ax.plot(t, mem, color="#3f51b5", lw=2, label="session memory")
    ax.axhline(limit / MiB, color="#b3261e", ls="--", lw=1.2, label="memory limit")
    restart = meta.get("seconds_to_restarting")
    if restart:
        ax.axvline(restart, color="#555", ls=":", lw=1)
        ax.annotate("notebook says\n'restarting'", (restart, limit / MiB * 0.5), ha="right",
                    xytext=(-6, 0), textcoords="offset points", color="#555")  # fmt: skip
    ax.set_xlabel("seconds since the cell started")
    ax.set_ylabel("MiB")
    ax.set_ylim(0, limit / MiB * 1.1)
    _legend(fig, 2)
    return fig


def kept_after_del(results: Mapping[str, Any], probes: Path) -> Any:  # noqa: ARG001
    """Memory still held after `del` and `gc.collect()`, by kind of object."""
    rows = results["probes"].get("memory-after-del", {}).get("figures", {}).get("kept_by_kind")
    if not rows:
        raise ChartError("the memory-after-del probe recorded no kept_by_kind")
    kinds = [r["kind"] for r in rows]
    allocated = [r["allocated_bytes"] / MiB for r in rows]
    kept = [max(r["kept_bytes"], 0) / MiB for r in rows]
    fig, ax = _figure(height=0.9 + 0.45 * len(rows))
    y = range(len(rows))
    ax.barh(y, allocated, color="#c5cae9", label="allocated")
    ax.barh(y, kept, color="#3f51b5", label="still held after del")
    ax.set_yticks(list(y), kinds)
    ax.invert_yaxis()
    ax.set_xlabel("MiB")
    _legend(fig, 2)
    return fig


def parallel(results: Mapping[str, Any], probes: Path) -> Any:  # noqa: ARG001
    """Wall time against n_jobs under the CPU limit, for joblib tasks and a forest."""
    fig_ = results["probes"].get("parallel", {}).get("figures", {})
    labels = ["n_jobs=1", "n_jobs=2", "n_jobs=-1"]
    series = {
        "8 CPU-bound joblib tasks": [fig_.get(f"joblib_seconds_{k}") for k in ("n1", "n2", "nall")],
        "random forest, 200 trees": [fig_.get(f"forest_seconds_{k}") for k in ("n1", "n2", "nall")],
    }
    if any(v is None for vals in series.values() for v in vals):
        raise ChartError("the parallel probe recorded no joblib_/forest_seconds_* figures")
    fig, ax = _figure(height=3.6)
    width = 0.38
    for i, (name, vals) in enumerate(series.items()):
        xs = [x + (i - 0.5) * width for x in range(len(labels))]
        bars = ax.bar(xs, vals, width, label=name, color=["#3f51b5", "#9fa8da"][i])
        ax.bar_label(bars, fmt="%.2f s", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("seconds (lower is faster)")
    ax.margins(y=0.15)  # room for the bars' labels
    extra = fig_.get("workers_memory_bytes")
    if extra:
        ax.set_title(f"the two workers also add {extra / MiB:.0f} MiB to the session", fontsize=9)
    _legend(fig, 2)
    return fig


#: name -> (builder returning a Matplotlib figure, alt text for the image; ``{cpu_limit:g}``
#: and the like are filled in from the hub profile the data were measured under)
CHARTS: dict[str, tuple[Callable[[Mapping[str, Any], Path], Any], str]] = {
    "oom-memory": (oom_memory, "Session memory rising to the limit, then the kernel restarting"),
    "kept-after-del": (kept_after_del, "Memory still held after del, by kind of object"),
    "parallel": (
        parallel,
        "Wall time with n_jobs=1, 2 and -1 under a {cpu_limit:g}-CPU limit, for joblib tasks and a random forest",
    ),
}


#: Charts of times that depend on the CPUs a session gets (the others draw memory).
TIMING_CHARTS = frozenset({"parallel"})

#: name -> the probe whose measurements it draws (its page shows the chart too)
CHART_PROBES = {"oom-memory": "oom", "kept-after-del": "memory-after-del", "parallel": "parallel"}


def draw(name: str, results: Mapping[str, Any], probes: Path) -> Any:
    """The chart as a Matplotlib figure (close it with matplotlib.pyplot.close)."""
    if name not in CHARTS:
        raise ChartError(f"unknown chart {name!r}; one of {', '.join(CHARTS)}")
    return CHARTS[name][0](results, probes)


def make_chart(
    name: str, results: Mapping[str, Any], probes: Path, cache: Path | None = None
) -> str:
    """The chart as SVG text; with ``cache``, drawn once per set of inputs.

    Drawing needs Matplotlib (about a second to import and draw); the cache
    key covers everything a chart reads (the results, the executed probe
    notebooks, this module), so a cached picture is always the one drawing
    would give.
    """
    if cache is None:
        return _svg(draw(name, results, probes))
    key = hashlib.sha256(json.dumps(results, sort_keys=True, default=str).encode())
    key.update(Path(__file__).read_bytes())
    probe = CHART_PROBES.get(name)
    if probe is not None and (probes / f"{probe}.ipynb").exists():
        key.update((probes / f"{probe}.ipynb").read_bytes())
    path = cache / f"{name}-{key.hexdigest()[:16]}.svg"
    if path.exists():
        return path.read_text()
    svg = _svg(draw(name, results, probes))
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{name}-*.svg"):
        old.unlink()
    write_atomic(path, svg)
    return svg
