"""Take the guide's real screenshots with headless Debian Chromium.

- docs/assets/screenshots/memory-indicator.png: JupyterLab's status bar with
  jupyter-resource-usage, in the sandbox under the profile's memory limit,
  with a notebook holding some memory.
- docs/assets/screenshots/oom-notice.png: hubprobe.notice after an
  out-of-memory restart in JupyterLab (see notice_screenshot.py).
- docs/assets/screenshots/home.png and claim.png: the built site (run
  `mkdocs build` first), for the README.

Run by `nox -s screenshots`; needs root (the sandbox) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import notice_screenshot  # tools/, beside this file

from hubprobe.jupyter.server import JupyterServer
from hubprobe.profiles import DEFAULT_PROFILE, load_profile
from hubprobe.sandbox import Limits, choose_backend
from hubprobe.site.browser import chromium, forward_unix, missing, serve_dir

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "assets" / "screenshots"


def memory_indicator(browser: object, profile_name: str) -> None:
    profile = load_profile(profile_name)
    with (
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="hubprobe-shots-") as logdir,
        choose_backend().create(Limits.from_profile(profile)) as sandbox,
    ):
        seed = Path(logdir) / "home"
        notice_screenshot.seed_settings(seed)  # no "get news?" pop-up over the status bar
        server = JupyterServer(sandbox, Path(logdir) / "server.log", seed=seed)
        api = server.start()
        # The server listens on a Unix socket only; the browser gets a loopback port to it.
        lab = stack.enter_context(forward_unix(server.socket_path))
        nb = {
            "cells": [],
            "metadata": {
                "kernelspec": {
                    "name": "python3",
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                }
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        api.save_notebook("homework.ipynb", nb)
        page = browser.new_page(viewport={"width": 1100, "height": 560})  # type: ignore[attr-defined]
        page.goto(f"{lab}/lab/tree/homework.ipynb?token={server.token}")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        time.sleep(3)  # let the kernel start before typing
        cell = page.locator(".jp-Cell .cm-content").first
        cell.click()
        page.keyboard.type("import numpy as np\ndata = np.ones(600 * 2**20 // 8)  # 600 MiB")
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_selector("text=/Mem: /", timeout=30_000)
        finally:
            page.screenshot(path=str(OUT / "memory-indicator.png"))
        time.sleep(6)  # the indicator polls every 5 s
        if page.get_by_text("Jupyter news").count():
            raise SystemExit("memory-indicator.png: JupyterLab's news pop-up is showing")
        page.screenshot(path=str(OUT / "memory-indicator.png"))
        text = page.locator("text=/Mem: /").first.inner_text()
        print(f"memory-indicator.png: status bar shows {text!r}")
        page.close()


def site_pages(browser: object) -> None:
    site = ROOT / "site"
    if not (site / "index.html").exists():
        sys.exit("no built site: run `mkdocs build` first")
    with serve_dir(site) as base:
        page = browser.new_page(viewport={"width": 1200, "height": 800})  # type: ignore[attr-defined]
        page.goto(base)
        page.screenshot(path=str(OUT / "home.png"))
        page.goto(f"{base}explanation/silent-oom-kill/")
        # The first badge a DataHub reader sees (other hubs' are hidden), with
        # the paragraph or list item it stands in.
        badge = page.locator(".hp-badge:visible").first
        badge.scroll_into_view_if_needed()
        para = badge.locator("xpath=ancestor::*[self::p or self::li][1]")
        para.screenshot(path=str(OUT / "claim.png"))
        print("home.png, claim.png: taken from the built site")
        page.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    args = parser.parse_args()
    why = missing()
    if why:
        sys.exit(f"screenshots: {why}")
    OUT.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        memory_indicator(browser, args.profile)
        notice_screenshot.take(browser, args.profile)
        site_pages(browser)
    return 0


if __name__ == "__main__":
    sys.exit(main())
