"""Will an assignment fit? The verdict, the heaviest cells and the hints, from cell runs.

Pure: takes what the runner observed (one :class:`CellRun` per code cell)
and the notebook's sources, returns judgements. Nothing here starts a
sandbox, so every rule is tested on made-up cells (tests/test_verdict.py).

Verdicts, from best to worst, each with its exit status for ``hubprobe check``:
``fits`` (the session's peak stayed under 80 % of the limit), ``tight``
(80 % or more, but nothing died), ``timeout``, ``error`` and ``killed`` (at
the first cell where that happened, counted from 1 over all cells as a
reader counts them, markdown included). With ``--keep-going`` the cells after
an error still ran: the verdict stays ``error`` at the first one, and says
how many cells raised and what the memory verdict of the whole run is.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence

from hubprobe.errors import ExitCode
from hubprobe.jupyter.cells import KERNEL_DIED, CellRun, Outcome
from hubprobe.units import format_bytes

__all__ = [
    "EXIT_CODES",
    "JOBLIB_WORKERS_CODE",
    "TIGHT_FRACTION",
    "Hint",
    "Verdict",
    "asks_for_workers",
    "exit_code",
    "heaviest_by_memory",
    "heaviest_by_time",
    "hints",
    "joblib_workers",
    "judge",
    "memory_rise",
    "stops_check",
]

#: At or above this share of the limit a notebook is "tight": a second open
#: notebook, the browser's extensions or a student's extra cell tips it over.
TIGHT_FRACTION = 0.8
#: Within this share of the limit of the line, a report says how far apart raw and working set are.
NEAR = 0.03

#: Exit status per verdict; higher is worse, so several notebooks exit with
#: the highest. 1 and 2 are left to Python's crashes and to usage errors.
EXIT_CODES: dict[str, int] = {
    "fits": ExitCode.OK,
    "tight": ExitCode.TIGHT,
    "timeout": ExitCode.TIMEOUT,
    "error": ExitCode.ERROR,
    "killed": ExitCode.KILLED,
    # A run stopped by Ctrl-C still reports the cells it measured.
    "interrupted": ExitCode.SIGINT,
}


@dataclasses.dataclass(frozen=True)
class Verdict:
    kind: str  # fits | tight | timeout | error | killed | interrupted
    at_cell: int | None  # the first cell that timed out, raised or was killed
    detail: str  # one line for a person
    peak_memory_bytes: int
    memory_limit_bytes: int
    #: Every cell that raised (not tagged raises-exception); more than one only with keep-going.
    raised: tuple[int, ...] = ()
    #: fits or tight: the peak of every cell that ran, whatever else happened.
    memory_kind: str = "fits"
    #: The working set's peak (usage minus inactive file cache): what fits/tight is judged on,
    #: as Kubernetes judges a container; the raw peak above includes reclaimable page cache.
    peak_working_set_bytes: int = 0
    #: Said when the peak is near the 80 % line: how far the raw figure and the working set
    #: are apart, which is what moves between identical runs.
    spread: str = ""

    @property
    def working_set_fraction(self) -> float:
        return (self.peak_working_set_bytes or self.peak_memory_bytes) / self.memory_limit_bytes

    @property
    def peak_fraction(self) -> float:
        return self.peak_memory_bytes / self.memory_limit_bytes

    @property
    def headroom_bytes(self) -> int:
        return max(self.memory_limit_bytes - self.peak_memory_bytes, 0)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]


@dataclasses.dataclass(frozen=True)
class Hint:
    cell: int  # the first cell it is about
    kind: str  # n_jobs | cpu_count | large_read | student_version | missing_module | ...
    text: str
    #: Every cell with the same cause: a hint is given once, not once per cell.
    cells: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.cells:
            object.__setattr__(self, "cells", (self.cell,))

    @property
    def where(self) -> str:
        """``cell 4`` or ``cells 4, 9``."""
        if len(self.cells) == 1:
            return f"cell {self.cells[0]}"
        return "cells " + ", ".join(str(c) for c in self.cells)


def stops_check(run: CellRun, allowed_errors: frozenset[int] = frozenset()) -> bool:
    """Whether the first bad cell was reached: ``check`` runs no further after it.

    The runner goes on after a kill (it reconnects, as a student would), but
    later cells would then only fail for want of the lost variables.
    """
    if run.outcome == "error":
        return run.index not in allowed_errors
    return run.outcome in KERNEL_DIED or run.outcome == Outcome.TIMEOUT


def error_text(run: CellRun) -> str:
    """``KeyError: 'grade'``, from the cell's error output."""
    for out in run.outputs:
        if out.get("output_type") == "error":
            value = str(out.get("evalue", "")).strip().splitlines()
            return (
                f"{out.get('ename', run.error_name)}: {value[0]}" if value else str(run.error_name)
            )
    return str(run.error_name or "an exception")


def judge(
    cells: Sequence[CellRun], memory_limit_bytes: int, allowed_errors: frozenset[int] = frozenset()
) -> Verdict:
    """The notebook's verdict: the first cell that went wrong, else peak against limit.

    ``allowed_errors``: cells tagged ``raises-exception`` (nbconvert's tag for
    a cell meant to raise); their error is not a verdict. Where cells ran
    after the one that went wrong (``--keep-going``, ``--after-kill
    continue``), the detail also gives the memory verdict of the whole run.
    """
    peak = max((c.peak_memory_bytes for c in cells), default=0)
    # A cell without a working-set figure (a backend that cannot read the cache) counts raw.
    working = max((c.peak_working_set_bytes or c.peak_memory_bytes for c in cells), default=0)
    fraction = working / memory_limit_bytes
    raw = peak / memory_limit_bytes
    memory_kind = "tight" if fraction >= TIGHT_FRACTION else "fits"
    spread = ""
    if fraction < TIGHT_FRACTION <= raw or abs(fraction - TIGHT_FRACTION) < NEAR:
        spread = (
            f"near the {TIGHT_FRACTION:.0%} line: the working set peaked at {fraction:.1%} of the "
            f"limit, raw usage (with page cache) at {raw:.1%}; the page cache is what moves "
            "between identical runs, the working set decides, as on Kubernetes"
        )
    raised = tuple(c.index for c in cells if c.outcome == "error" and c.index not in allowed_errors)

    def verdict(kind: str, at: int | None, detail: str) -> Verdict:
        if at is not None and any(c.index > at and c.outcome != "not-run" for c in cells):
            if len(raised) > 1 or (raised and kind != "error"):
                listed = ", ".join(str(i) for i in raised[:8]) + (
                    ", ..." if len(raised) > 8 else ""
                )
                detail += f"; {len(raised)} cell{'s' if len(raised) > 1 else ''} raised ({listed})"
            detail += f"; memory over every cell that ran: {memory_kind}, peak {fraction:.0%}"
        return Verdict(
            kind, at, detail, peak, memory_limit_bytes, raised, memory_kind, working, spread
        )

    for c in cells:
        if c.outcome in KERNEL_DIED:
            if c.oom_kills:
                why = f"out of memory ({c.oom_kills} OOM kill{'s' if c.oom_kills > 1 else ''})"
            else:
                why = "the kernel died, but no OOM kill was counted: not memory"
            if c.outcome == Outcome.SERVER_DIED:
                why += "; the whole server went down with it"
            return verdict("killed", c.index, f"killed at cell {c.index}: {why}")
        if c.outcome == "timeout":
            return verdict(
                "timeout", c.index, f"timeout at cell {c.index}: still running after "
                f"{c.wall_seconds:.0f} s",
            )  # fmt: skip
        if c.outcome == "error" and c.index not in allowed_errors:
            return verdict("error", c.index, f"error at cell {c.index}: {error_text(c)}")
    if memory_kind == "tight":
        return verdict(
            "tight", None, f"tight: the peak reached {fraction:.0%} of the limit; a second open "
            "notebook or a larger input would tip it over",
        )  # fmt: skip
    said = (
        f" (working set; {raw:.0%} with page cache)" if round(raw, 2) != round(fraction, 2) else ""
    )
    return verdict("fits", None, f"fits: the peak stayed at {fraction:.0%} of the limit{said}")


def exit_code(verdicts: Sequence[Verdict]) -> int:
    """The worst verdict's status; 0 when every notebook fits."""
    return max((v.exit_code for v in verdicts), default=0)


def memory_rise(run: CellRun) -> int:
    """How far the session's memory rose above where it stood when the cell started.

    Ranking by peak alone would name every cell after a big load; the rise
    names the cell that did it.
    """
    start = run.memory_samples[0][1] if run.memory_samples else run.peak_memory_bytes
    return max(run.peak_memory_bytes - start, 0)


def _ran(cells: Sequence[CellRun]) -> list[CellRun]:
    return [c for c in cells if c.outcome != "not-run"]


def heaviest_by_memory(cells: Sequence[CellRun], n: int = 3) -> list[CellRun]:
    return sorted(_ran(cells), key=lambda c: (-memory_rise(c), -c.peak_memory_bytes))[:n]


def heaviest_by_time(cells: Sequence[CellRun], n: int = 3) -> list[CellRun]:
    return sorted(_ran(cells), key=lambda c: -c.wall_seconds)[:n]


# -- hints for the author -----------------------------------------------------
_N_JOBS = re.compile(r"\bn_jobs\s*=\s*([^,)\s]+)")
_CPU_COUNT = re.compile(r"\b(?:os|multiprocessing|mp)\.cpu_count\s*\(\s*\)")
#: How a failed network call reads: the sandbox has no network, a hub does.
_NETWORK = re.compile(
    r"name resolution|Name or service not known|Network is unreachable|No route to host"
    r"|nodename nor servname|getaddrinfo|Failed to establish a new connection",
    re.IGNORECASE,
)
_NETWORK_ERRORS = frozenset({"URLError", "gaierror", "ConnectionError", "NewConnectionError",
                             "MaxRetryError", "ConnectTimeout", "ConnectionRefusedError"})  # fmt: skip


def network_failure(run: CellRun | None) -> bool:
    """Whether the cell failed reaching the network, which the sandbox does not have."""
    for out in run.outputs if run is not None else []:
        if out.get("output_type") == "error" and (
            out.get("ename") in _NETWORK_ERRORS or _NETWORK.search(str(out.get("evalue", "")))
        ):
            return True
    return False


# A whole-file read through a library, with the file name when it is a literal.
_READ = re.compile(
    r"\b\w+\.(?P<fn>read_(?:csv|table|json|parquet|excel|feather|fwf|pickle|sas|stata|hdf)"
    r"|loadtxt|genfromtxt|fromfile|load)\s*\(\s*(?:[rfb]?['\"](?P<file>[^'\"]+)['\"])?"
)
_ALREADY_SMALL = re.compile(
    r"\b(?:chunksize|usecols|nrows|iterator|max_rows|columns|mmap_mode)\s*="
)
_FEWER_ROWS = (
    "load only the columns and rows it needs (usecols=, max_rows=), or save it once as .npy "
    "and open that with np.load(..., mmap_mode='r')"
)
#: What to suggest, by reader: pandas can read in chunks, numpy can map a binary file.
_SMALLER_READ = {
    "read_": "read it in chunks (chunksize=) keeping a summary of each, or only the columns "
    "it needs (usecols=)",
    "loadtxt": _FEWER_ROWS,
    "genfromtxt": _FEWER_ROWS,
    "load": "open it with mmap_mode='r', so only the parts used are read into memory",
    "fromfile": "use np.memmap, so only the parts used are read into memory",
}
#: A read is worth a hint when its file, or the memory the cell took, is at
#: least this share of the limit: below it, chunking buys little.
LARGE_FILE_FRACTION = 0.05
LARGE_RISE_FRACTION = 0.25


def _code_lines(source: str) -> str:
    """The source without comment lines and IPython magics, which run nothing of ours."""
    keep = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("#", "%", "!"))]
    return "\n".join(keep)


#: Run silently after a cell that asks joblib for workers: how many loky worker
#: processes are alive (loky keeps them for 300 s after Parallel returns), so
#: the hint says what joblib really did. One expression: no name is left in
#: the student's namespace.
JOBLIB_WORKERS_CODE = (
    "print(__import__('json').dumps((lambda m: {'loky_workers': len(getattr(getattr(m, "
    "'_executor', None), '_processes', None) or {}) if m is not None else None})("
    "__import__('sys').modules.get('joblib.externals.loky.reusable_executor'))))"
)


def asks_for_workers(source: str) -> bool:
    """Whether a cell may start joblib workers: worth counting them after it."""
    src = _code_lines(source)
    return any(v not in ("1", "None") for v in _N_JOBS.findall(src)) or "Parallel(" in src


def joblib_workers(run: CellRun | None) -> int | None:
    """The loky workers alive after the cell, from :data:`JOBLIB_WORKERS_CODE`; None: unknown."""
    if run is None or not run.inspected:
        return None
    try:
        value = json.loads(run.inspected.strip().splitlines()[-1]).get("loky_workers")
    except (ValueError, AttributeError, IndexError):
        return None
    return value if isinstance(value, int) else None


def hints(
    sources: Mapping[int, str],
    cells: Sequence[CellRun],
    memory_limit_bytes: int,
    cpu_limit: float,
    cpu_guarantee: float,
    node_cpus: int,
    size_of: Callable[[str], int | None],
) -> list[Hint]:
    """What is worth telling the author, once per distinct cause.

    ``sources``: code cell number -> source. ``size_of``: a file name as the
    notebook writes it -> its size in bytes, or None if it is not there.
    The same cause in several cells (``n_jobs=-1`` in five cells) is one
    hint naming them all; what it says comes from what was measured there.
    """
    runs = {c.index: c for c in cells}
    n_jobs: dict[str, list[int]] = {}
    cpu_count: list[int] = []
    reads: dict[str, Hint] = {}
    for index, raw in sorted(sources.items()):
        src = _code_lines(raw)
        for value in dict.fromkeys(_N_JOBS.findall(src)):
            if value not in ("1", "None"):
                n_jobs.setdefault(value, []).append(index)
        if _CPU_COUNT.search(src):
            cpu_count.append(index)
        for hint in _large_reads(index, src, runs.get(index), memory_limit_bytes, size_of):
            key = hint.text.split(":", 1)[0]  # the call and its file: one cause
            if key in reads:
                first = reads[key]
                reads[key] = dataclasses.replace(first, cells=(*first.cells, index))
            else:
                reads[key] = hint
    out = [
        _n_jobs_hint(value, where, runs, memory_limit_bytes, cpu_limit, cpu_guarantee)
        for value, where in n_jobs.items()
    ]
    if cpu_count:
        out.append(Hint(cpu_count[0], "cpu_count", (
            f"os.cpu_count() gives the node's {node_cpus} cores, not the session's "
            f"{_cpus(cpu_limit)}; use joblib.cpu_count(), which reads the limit"
        ), tuple(cpu_count)))  # fmt: skip
    out += reads.values()
    offline = [c.index for c in cells if network_failure(c)]
    if offline:
        out.append(Hint(offline[0], "network", (
            "a network call failed: hubprobe's sandbox has no network, but on the hub this"
            " cell would have reached the internet, so this is not a bug in the notebook;"
            " put the file it downloads into the notebook's folder to check the cells after it"
        ), tuple(offline)))  # fmt: skip
    return sorted(out, key=lambda h: (h.cell, h.kind))


def _cpus(n: float) -> str:
    return f"{n:g} CPU" + ("" if n <= 1 else "s")


def _n_jobs_hint(
    value: str,
    where: list[int],
    runs: Mapping[int, CellRun],
    limit: int,
    cpu_limit: float,
    cpu_guarantee: float,
) -> Hint:
    ran = [runs[i] for i in where if i in runs and runs[i].outcome != "not-run"]
    counted = [w for w in (joblib_workers(r) for r in ran) if w is not None]
    workers = max(counted) if counted else None
    facts = []
    if workers == 0:
        facts.append("joblib started no worker process (the work ran in the kernel, or in threads)")
    elif workers == 1:
        facts.append("joblib ran one worker process, so nothing ran in parallel")
    elif workers is not None:
        facts.append(
            f"joblib started {workers} worker processes, each holding its own copy of the data "
            "it works on"
        )
    heaviest = max(ran, key=memory_rise, default=None)
    if heaviest is not None and memory_rise(heaviest) > 0:
        rise = memory_rise(heaviest)
        facts.append(
            f"cell {heaviest.index} rose by {format_bytes(rise, measured=True)} "
            f"({rise / limit:.0%} of the limit)"
        )
    if cpu_limit <= 1:
        advice = f"under a {_cpus(cpu_limit)} limit parallel jobs run no faster"
        if workers is None:
            advice += ", and each worker process would take its own memory"
        advice += "; leave n_jobs at 1"
    else:
        # Above one CPU, parallel work can help, but only the guarantee is sure.
        advice = (
            f"of the {_cpus(cpu_limit)} only {cpu_guarantee:g} is guaranteed when the node is "
            "busy; check the peak with n_jobs=1 too"
        )
    text = f"n_jobs={value}: " + "".join(f"{f}; " for f in facts) + advice
    return Hint(where[0], "n_jobs", text, tuple(where))


def _large_reads(
    index: int,
    src: str,
    run: CellRun | None,
    limit: int,
    size_of: Callable[[str], int | None],
) -> list[Hint]:
    if _ALREADY_SMALL.search(src):
        return []
    rise = memory_rise(run) if run is not None else 0
    out = []
    for m in _READ.finditer(src):
        name = m["file"]
        size = size_of(name) if name else None
        big_file = size is not None and size >= LARGE_FILE_FRACTION * limit
        big_rise = rise >= LARGE_RISE_FRACTION * limit
        if not (big_file or big_rise):
            continue
        what = f"{m['fn']}({name!r})" if name else f"{m['fn']}()"
        facts = []
        if size is not None:
            facts.append(f"{format_bytes(size, measured=True)} on disk")
        if run is not None and rise:
            facts.append(
                f"the session grew by {format_bytes(rise, measured=True)} ({rise / limit:.0%} of the limit) "
                "in this cell"
            )
        how = _SMALLER_READ.get(m["fn"], _SMALLER_READ["read_"])
        out.append(Hint(index, "large_read", f"{what}: {', and '.join(facts)}; {how}"))
        break  # one hint per cell is enough to make the point
    return out
