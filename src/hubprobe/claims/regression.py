"""Compare a committed, executed probe notebook with a fresh run of it.

The comparison is pytest-notebook's (nbdime underneath): both notebooks get
their stream outputs coalesced (how prints were split into messages is
timing), then regex replacements, then a diff with some paths left out. A
probe whose behaviour changes (a count, a status, an error's name, a missing
output, different text) fails the check even when its claims still pass.

Only values that are never behaviour are replaced everywhere (GLOBAL_REPLACE)
or left out (IGNORE). What else legitimately varies between runs, a measured
size or a time, is declared by the cell that prints it, as narrow regular
expressions in its ``metadata.nbreg.diff_replace`` (pytest-notebook's own
format: ``[path under the cell, regex, replacement]``), so the mask sits
next to the probe it belongs to and everything else in that cell is compared.

Needs the ``test`` extra (pytest-notebook); only the tests import this module.
"""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode
from pytest_notebook.diffing import (  # type: ignore[import-untyped]
    diff_notebooks,
    diff_to_string,
    filter_diff,
)
from pytest_notebook.notebook import (  # type: ignore[import-untyped]
    config_from_metadata,
    regex_replace_nb,
)
from pytest_notebook.post_processors import coalesce_streams  # type: ignore[import-untyped]

from hubprobe.probe import FIGURES_MIME

__all__ = ["GLOBAL_REPLACE", "IGNORE", "notebook_diff"]

OUTPUTS = "/cells/*/outputs"

#: (path, regex, replacement) applied to every output of every probe, before the
#: cells' own masks: values no probe's behaviour is about.
GLOBAL_REPLACE: tuple[tuple[str, str, str], ...] = (
    (OUTPUTS, r"0x[0-9a-f]+", "<addr>"),  # object reprs, C pointers
    (OUTPUTS, r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>"),
    (OUTPUTS, r"/tmp/hubprobe-[^\s'\"]+", "<tmp>"),  # the run's own temporary folder
    # The venv the probes ran in: another session, another checkout, another Python.
    (OUTPUTS, r"(?:/[\w.+-]+)+/lib/python3\.\d+/site-packages/", "<venv>/site-packages/"),
    (OUTPUTS, r"/\.nox/[^/\s]+/", "/.nox/<env>/"),
    (OUTPUTS, r"\x1b\[[0-9;]*m", ""),  # colours in tracebacks
)

#: Paths left out of the diff: no text a pattern could replace, and never behaviour.
IGNORE: tuple[str, ...] = (
    "/metadata",  # kernelspec and language info; hubprobe's and nbreg's settings
    "/nbformat_minor",
    "/cells/*/id",
    "/cells/*/metadata",  # the runner's per-cell figures (times, memory samples), nbreg
    "/cells/*/execution_count",
    "/cells/*/outputs/*/execution_count",
    # Line numbers inside libraries; the error's name and value are still compared.
    "/cells/*/outputs/*/traceback",
    # The same figures as the text/plain beside it, which is compared (masked per cell);
    # numbers in JSON are not text a regex can replace.
    f"/cells/*/outputs/*/data/{FIGURES_MIME}",
)


def _prepared(nb: NotebookNode, replace: list[tuple[str, str, str]]) -> Any:
    coalesced, _ = coalesce_streams(nb, {})
    return regex_replace_nb(coalesced, replace)


def notebook_diff(
    committed: NotebookNode, fresh: NotebookNode, masks: NotebookNode | None = None
) -> str:
    """A readable diff of what differs after masking; empty if the fresh run matches.

    The masks come from ``masks``' (per-notebook and per-cell) ``nbreg``
    metadata: the probe's source, where the masks are kept up to date (a
    committed run carries the masks it was run with). Without it, from the
    committed notebook's. The fresh run is a run of that same probe.
    """
    config = config_from_metadata(masks if masks is not None else committed)
    replace = [*GLOBAL_REPLACE, *config.diff_replace]
    before, after = _prepared(committed, replace), _prepared(fresh, replace)
    diff = filter_diff(diff_notebooks(before, after), [*IGNORE, *config.diff_ignore])
    if not diff:
        return ""
    return str(diff_to_string(before, diff, use_git=False, use_diff=False, use_color=False))
