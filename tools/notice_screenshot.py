"""Take docs/assets/screenshots/oom-notice.png: the out-of-memory notice in JupyterLab.

A real Jupyter server in the sandbox, with every kernel loading the
``hubprobe.notice`` extension from an ``ipython_kernel_config.py`` seeded into
the private home (as a hub's image would configure it). Headless Chromium
opens a notebook in JupyterLab, runs a cell that allocates past a small
(512 MiB) limit, waits for the restart, dismisses JupyterLab's dialog, runs
the next cell, and photographs the notice above that cell's error.

Called by tools/screenshots.py (`nox -s screenshots`); needs root (the sandbox),
/usr/bin/chromium and Playwright for Python.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from hubprobe.jupyter.server import JupyterServer
from hubprobe.profiles import load_profile
from hubprobe.sandbox import Limits, choose_backend

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "assets" / "screenshots" / "oom-notice.png"
LIMIT = 512 * 2**20  # small, so the allocation is quick
#: What a hub admin would set; example.org stands for the hub's copy of the guide.
GUIDE_URL = "https://example.org/guide/explanation/silent-oom-kill/"
CONFIG = f"""\
c.InteractiveShellApp.extensions = ["hubprobe.notice"]
c.OOMNotice.guide_url = "{GUIDE_URL}"
"""
CELLS = [
    'results = "an hour of work"',
    "data = bytearray(2**30)  # 1 GiB: twice the session's limit",
    "print(results)",
]


def notebook() -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "code", "source": s, "metadata": {}, "outputs": [], "execution_count": None}
            for s in CELLS
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip


def take(browser: Any, profile_name: str) -> None:
    base = load_profile(profile_name)
    profile = dataclasses.replace(
        base,
        memory_limit_bytes=LIMIT,
        memory_guarantee_bytes=min(base.memory_guarantee_bytes, LIMIT),
    )
    with (
        tempfile.TemporaryDirectory(prefix="hubprobe-shots-") as tmp,
        choose_backend().create(Limits.from_profile(profile)) as sandbox,
    ):
        seed = Path(tmp) / "home"
        config = seed / ".ipython" / "profile_default" / "ipython_kernel_config.py"
        config.parent.mkdir(parents=True)
        config.write_text(CONFIG)
        server = JupyterServer(sandbox, Path(tmp) / "server.log", seed=seed)
        api = server.start()
        api.save_notebook("homework.ipynb", notebook())
        page = browser.new_page(viewport={"width": 1000, "height": 580})
        page.goto(f"{server.url}/lab/tree/homework.ipynb?reset&token={server.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        # The status bar says so once the kernel is up; keys pressed before are lost.
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
        page.keyboard.press("Control+b")  # hide the file browser: more room for the cell
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.nth(0).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")  # results = ...
        page.keyboard.press("Shift+Enter")  # the allocation: the kernel is killed
        page.wait_for_selector("text=Kernel Restarting", timeout=60_000)
        page.get_by_role("button", name="Ok").click()
        # JupyterLab says "Starting" until the kernel's next message; the server
        # knows sooner. Then the student runs the next cell.
        deadline = time.monotonic() + 60
        while api.kernels()[0]["execution_state"] != "idle" and time.monotonic() < deadline:
            time.sleep(0.2)
        cells.nth(2).locator(".cm-content").click()
        page.keyboard.press("Control+Enter")  # the notice, then the NameError
        page.wait_for_selector("text=this session ran out of memory", timeout=60_000)
        news = page.get_by_role("button", name="No")
        if news.count():
            news.first.click()  # JupyterLab's "notify about news?" toast
        time.sleep(0.5)
        page.screenshot(path=str(OUT))
        shown = cells.nth(2).locator(".jp-OutputArea").inner_text()
        print(f"{OUT.relative_to(ROOT)}: {shown.splitlines()[0]!r} ...")
        page.close()
