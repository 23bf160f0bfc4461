"""Take docs/assets/screenshots/oom-notice.png: the out-of-memory notice in JupyterLab.

A real Jupyter server in the sandbox under the profile's own limit (the one
the guide's page quotes), with every kernel loading the ``hubprobe.notice``
extension from an ``ipython_kernel_config.py`` seeded into the private home
(as a hub's image would configure it) and its default link: the guide's
published page. Headless Chromium opens a notebook in JupyterLab, runs a
cell that allocates past the limit, waits for the restart, dismisses
JupyterLab's dialog, runs the next cell, and photographs the notice above
that cell's error. JupyterLab's "get news?" pop-up is turned off in the
seeded settings, as it is on a hub that has answered it.

Called by tools/screenshots.py (`nox -s screenshots`); needs root (the sandbox),
/usr/bin/chromium and Playwright for Python.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from hubprobe.jupyter.server import JupyterServer
from hubprobe.notice import DEFAULT_GUIDE_URL
from hubprobe.profiles import load_profile
from hubprobe.sandbox import Limits, choose_backend
from hubprobe.site.browser import forward_unix

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "assets" / "screenshots" / "oom-notice.png"
#: What a hub admin adds to the image: the extension, with its default link.
CONFIG = 'c.InteractiveShellApp.extensions = ["hubprobe.notice"]\n'
#: JupyterLab's settings with the news question answered, so no pop-up covers the page.
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}


def seed_settings(home: Path) -> None:
    """JupyterLab user settings in a home to seed: no news pop-up."""
    settings = home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps(NO_NEWS))


def cell_sources(limit: int) -> list[str]:
    over = limit * 3 // 2
    return [
        'results = "an hour of work"',
        f"data = bytearray({over // 2**20} * 2**20)  # half as much again as the session's limit",
        "print(results)",
    ]


def notebook(limit: int) -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "code", "source": s, "metadata": {}, "outputs": [], "execution_count": None}
            for s in cell_sources(limit)
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip


def take(browser: Any, profile_name: str) -> None:
    profile = load_profile(profile_name)
    with (
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="hubprobe-shots-") as tmp,
        choose_backend().create(Limits.from_profile(profile)) as sandbox,
    ):
        seed = Path(tmp) / "home"
        config = seed / ".ipython" / "profile_default" / "ipython_kernel_config.py"
        config.parent.mkdir(parents=True)
        config.write_text(CONFIG)
        seed_settings(seed)
        server = JupyterServer(sandbox, Path(tmp) / "server.log", seed=seed)
        api = server.start()
        # The server listens on a Unix socket only; the browser gets a loopback port to it.
        lab = stack.enter_context(forward_unix(server.socket_path))
        api.save_notebook("homework.ipynb", notebook(profile.memory_limit_bytes))
        page = browser.new_page(viewport={"width": 1000, "height": 580})
        page.goto(f"{lab}/lab/tree/homework.ipynb?reset&token={server.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        # The status bar says so once the kernel is up; keys pressed before are lost.
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
        page.keyboard.press("Control+b")  # hide the file browser: more room for the cell
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.nth(0).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")  # results = ...
        page.keyboard.press("Shift+Enter")  # the allocation: the kernel is killed
        page.wait_for_selector("text=Kernel Restarting", timeout=60_000)
        page.get_by_role("button", name="Ok", exact=True).click()
        # JupyterLab says "Starting" until the kernel's next message; the server
        # knows sooner. Then the student runs the next cell.
        deadline = time.monotonic() + 60
        while api.kernels()[0]["execution_state"] != "idle" and time.monotonic() < deadline:
            time.sleep(0.2)
        cells.nth(2).locator(".cm-content").click()
        page.keyboard.press("Control+Enter")  # the notice, then the NameError
        page.wait_for_selector("text=this session ran out of memory", timeout=60_000)
        time.sleep(0.5)
        shown = cells.nth(2).locator(".jp-OutputArea").inner_text()
        if DEFAULT_GUIDE_URL not in shown or page.get_by_text("Jupyter news").count():
            raise SystemExit(f"{OUT.name}: not the picture the guide describes: {shown!r}")
        page.screenshot(path=str(OUT))
        print(f"{OUT.relative_to(ROOT)}: {shown.splitlines()[0]!r} ... {DEFAULT_GUIDE_URL}")
        page.close()
