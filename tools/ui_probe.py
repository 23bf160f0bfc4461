"""Measure what a student sees when a cell runs out of memory, in JupyterLab and Notebook 7.

For each case, a fresh local JupyterHub (`hubprobe hub`'s, servers in the oci
container) under a small profile, and headless Debian Chromium driving it
(see hubprobe.hub.ui_probe). Writes probes/ui/whole-server-kill.json, with
provenance, and the screenshots the guide shows; the guide quotes the JSON
through `<!-- ui: whole-server-kill.<path> -->` (hubprobe.site.ui).

Run by `nox -s ui`; needs root (the container), /usr/bin/chromium, Playwright
for Python and configurable-http-proxy. `--only NAME` runs one case (and
merges it into the file's other cases).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import logging
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from hubprobe.files import write_atomic
from hubprobe.hub.local import LocalHub
from hubprobe.hub.ui_probe import indicator, measure, write_profile
from hubprobe.profiles import load_profile
from hubprobe.sandbox import choose_backend
from hubprobe.site.browser import chromium, missing

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "probes" / "ui" / "whole-server-kill.json"
SHOTS = ROOT / "docs" / "assets" / "screenshots"
MEMORY = "512M"
#: case -> (OOM scope, interface, screenshot after the kill, memory-indicator screenshot)
CASES = {
    "jupyterlab": ("container", "jupyterlab", "whole-server-kill-lab.png", None),
    "notebook7": ("container", "notebook7", "whole-server-kill-notebook7.png",
                  "memory-indicator-notebook7.png"),
    "jupyterlab_process": ("process", "jupyterlab", None, None),
}  # fmt: skip
#: What a reader of the record must know about how it was made.
NOTES = {
    "hub": "A real JupyterHub on 127.0.0.1 (hubprobe.hub.local) with its defaults:"
    " Spawner.poll_interval = 30 s (how soon it notices a dead server),"
    " JupyterHub.implicit_spawn_seconds = 0 (no automatic restart when the student comes back).",
    "oom_group": "On this machine's cgroup v1 the container scope is emulated: right after the"
    " kernel's OOM kill, the sandbox kills every other process of the container"
    " (hubprobe.sandbox.oomgroup), as memory.oom.group=1 does on Kubernetes >= 1.28 with cgroup v2.",
    "home": "The local hub gives every server start a new home. Before the student saves again,"
    " the runner puts both notebooks back byte for byte with their saved modification times,"
    " as a hub's persistent volume keeps them.",
    "kubernetes": "Not measured on Kubernetes: there the pod's restart policy and KubeSpawner's"
    " polling decide how soon the hub notices; the pages and dialogs are the same software.",
    "student": "The student clicks Restart as soon as a dialog offers it, else opens the"
    " notebook's address again; reloads every few seconds; clicks the hub's start button"
    " when shown; answers later dialogs keeping their own version (Overwrite, Dismiss, Ok).",
}
PACKAGES = ["jupyterlab", "notebook", "jupyterhub", "jupyter_server", "jupyter-resource-usage",
            "ipykernel", "playwright", "hubprobe"]  # fmt: skip


def run_case(browser: Any, name: str, folder: Path) -> dict[str, Any]:
    scope, interface, shot, memory_shot = CASES[name]
    path = write_profile(
        folder, f"ui-{name.replace('_', '-')}", scope=scope, interface=interface, memory=MEMORY
    )
    profile = load_profile(str(path))
    with LocalHub(profile) as hub:
        shown = None
        if memory_shot is not None:
            shown = indicator(
                browser, hub.url, hub.token, "student", interface, SHOTS / memory_shot
            )
        record = measure(
            browser, hub.url, hub.token, "student", interface, profile.memory_limit_bytes,
            screenshot=SHOTS / shot if shot else None,
        )  # fmt: skip
        if shown is not None:
            record["memory_indicator"] = shown
    record["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")  # --only keeps others
    record["profile"] = {
        "memory_limit_bytes": profile.memory_limit_bytes,
        "memory_limit": MEMORY,
        "oom_scope": profile.oom_scope,
        "cpu_limit": profile.cpu_limit,
        "interface": profile.interface,
    }
    return record


def write(out: Path, backend: str, chromium_version: str, cases: dict[str, Any]) -> None:
    data = {
        "format": 1,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "chromium": chromium_version,
        "python": platform.python_version(),
        "versions": {p: importlib.metadata.version(p) for p in PACKAGES},
        "notes": NOTES,
        "cases": cases,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    why = missing()
    if why:
        sys.exit(f"ui probe: {why}")
    backend = choose_backend().name
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    cases = dict(old.get("cases", {}))
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser, tempfile.TemporaryDirectory(prefix="hubprobe-ui-") as tmp:
        for name in args.only or list(CASES):
            print(f"ui probe: {name} ...", flush=True)
            cases[name] = run_case(browser, name, Path(tmp))
            write(args.out, backend, browser.version, cases)  # each case kept as it is done
    print(f"ui probe: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
