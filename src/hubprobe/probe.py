"""Helpers for probe notebooks, imported inside the sandboxed kernel.

A probe records its figures by displaying a small custom MIME bundle that the
runner collects; it can read the session's cgroup, and talk to its own
Jupyter server's REST API (the runner puts the URL and token in the server's
environment, which kernels inherit).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hubprobe.cgroup.session import SessionLimits, read_session
from hubprobe.jupyter.api import ApiError, ServerAPI
from hubprobe.jupyter.cells import wait_usable

# Probe notebooks import only from here: the engine's modules may move, the probes stay.
__all__ = [
    "FIGURES_MIME",
    "ApiError",
    "record",
    "recorded_figures",
    "server",
    "session",
    "wait_usable",
]

FIGURES_MIME = "application/vnd.hubprobe.figures+json"


def record(**figures: Any) -> None:
    """Show figures in the notebook and hand them to the runner."""
    from IPython.display import display  # only inside a kernel

    text = "\n".join(f"{k} = {v!r}" for k, v in figures.items())
    display({FIGURES_MIME: json.loads(json.dumps(figures)), "text/plain": text}, raw=True)


def server() -> ServerAPI:
    """The REST API of the Jupyter server this kernel belongs to."""
    from hubprobe.jupyter.server import LOCAL_URL, SOCKET_ENV, TOKEN_ENV, URL_ENV

    url = os.environ.get(URL_ENV, LOCAL_URL)
    try:
        return ServerAPI(url, os.environ[TOKEN_ENV], socket_path=os.environ[SOCKET_ENV])
    except KeyError:
        raise RuntimeError("not running under hubprobe's runner: no server URL/token") from None


def session() -> SessionLimits:
    """The session's limits and usage, read from its cgroup as `hubprobe limits` does."""
    return read_session()


def recorded_figures(nb: Any) -> dict[str, Any]:
    """What a probe recorded with :func:`record`, read back from its executed notebook."""
    figures: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get(FIGURES_MIME)
            if isinstance(data, dict):
                figures.update(data)
    return figures
