"""What a student sees when a cell runs out of memory, measured in a real browser.

Headless Chromium (Playwright, imported lazily) logs in to a local hub
(:class:`~hubprobe.hub.local.LocalHub`), opens two notebooks in JupyterLab 4
or Notebook 7, leaves an unsaved edit in each, and runs a cell that
allocates half as much again as the limit. Everything the pages show from
then on is recorded with its time since the cell started: dialogs (title,
body, buttons), what a reload shows, what the hub's home page offers, and
whether the edits are still in the editors and can be saved once a server
runs again. The student's way back is taken as a student would: the
dialog's Restart button at once if one offers it, else the notebook's address
opened again; then reloads, and the hub's start button where one is shown.

Nothing here decides what *should* happen: the record says what did, and
the guide quotes it (``<!-- ui: ... -->``, see :mod:`hubprobe.site.ui`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any

from hubprobe.hub.api import HubClient, HubError
from hubprobe.hub.ui_pages import (
    INTERFACES,
    Observer,
    answer,
    edit_first_cell,
    editors,
    kernel_status,
    login,
    open_fresh,
    page_view,
    visible_memory,
)
from hubprobe.jupyter.api import ApiError, ServerAPI
from hubprobe.profiles import load_profile

__all__ = ["indicator", "measure", "write_profile"]

log = logging.getLogger(__name__)

#: JupyterLab's settings with the news question answered, so no pop-up covers the page.
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}
_NEWS_SETTINGS = "/lab/api/settings/@jupyterlab/apputils-extension:notification"
_TOPBAR_SETTINGS = "/lab/api/settings/@jupyter-server/resource-usage:topbar-item"
RUNS, OTHER = "homework.ipynb", "analysis.ipynb"
#: How long the student looks at the page for a message after the cell started.
DIALOG_WAIT = 60.0


def write_profile(folder: Path, name: str, *, scope: str, interface: str, memory: str) -> Path:
    """The curriculum-guide profile with a small memory limit, an OOM scope and an interface."""
    text = load_profile("curriculum-guide").path.read_text()
    swaps = {
        'name = "curriculum-guide"': f'name = "{name}"',
        'limit = "2G"': f'limit = "{memory}"',
        'guarantee = "1G"': f'guarantee = "{memory}"',
        'oom_scope = "process"': f'oom_scope = "{scope}"',
        'default = "jupyterlab"': f'default = "{interface}"',
        'size = "10G"': 'size = "1G"',
    }
    for old, new in swaps.items():
        if old not in text:
            raise ValueError(f"the curriculum-guide profile no longer says {old!r}")
        text = text.replace(old, new, 1)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _notebook(sources: list[str]) -> dict[str, Any]:
    cells: list[dict[str, Any]] = [
        {"cell_type": "code", "source": s, "metadata": {}, "outputs": [], "execution_count": None}
        for s in sources
    ]
    spec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return {"cells": cells, "metadata": {"kernelspec": spec}, "nbformat": 4, "nbformat_minor": 5}


def _dialogs(watch: Observer) -> list[dict[str, Any]]:
    return [s for s in watch.seen if s["kind"] == "dialog"]


def _server_gone(api: ServerAPI) -> bool:
    try:
        api.status()
    except (ApiError, OSError):
        return True
    return False


def _hub_server_gone(client: HubClient, user: str) -> bool:
    try:
        return _hub_server(client, user) is None
    except HubError:
        return False


def _hub_server(client: HubClient, user: str) -> dict[str, Any] | None:
    server: dict[str, Any] | None = (client.user(user).get("servers") or {}).get("")
    return server


def _wait_kernels(api: ServerAPI, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The server's kernels once ``count`` are idle and each has a browser connected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            kernels = api.kernels()
        except ApiError as exc:  # a server busy starting a kernel can answer 500 once
            if exc.status < 500 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        ready = [k for k in kernels if k["execution_state"] == "idle" and k["connections"] >= 1]
        if len(ready) >= count:
            return kernels
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ready)} of {count} kernels ready: {kernels}")
        time.sleep(0.25)


def indicator(
    browser: Any, hub_url: str, token: str, user: str, interface: str, screenshot: Path | None
) -> dict[str, Any]:
    """Whether the interface shows the memory indicator, by default and with the top bar on.

    jupyter-resource-usage puts it in JupyterLab's status bar; its top-bar item
    (the one place Notebook 7 could show it) is off unless a setting turns it on.
    """
    ui = INTERFACES[interface]
    client = HubClient(hub_url, token)
    api, _ = client.ensure_server(user)
    api.request("PUT", _NEWS_SETTINGS, {"raw": json.dumps(NO_NEWS)})
    api.save_notebook("memory.ipynb", _notebook(["data = bytearray(100 * 2**20)"]))
    context = browser.new_context(viewport={"width": 1100, "height": 420})
    found: dict[str, Any] = {"interface": ui.label, "setting": _TOPBAR_SETTINGS.rsplit("/", 1)[1]}
    try:
        page = context.new_page()
        login(page, hub_url, user)
        url = f"{hub_url}/user/{urllib.parse.quote(user)}" + ui.path.format(path="memory.ipynb")
        for label, enable in (("default", None), ("top_bar_enabled", True)):
            if enable is not None:
                api.request("PUT", _TOPBAR_SETTINGS, {"raw": json.dumps({"enable": enable})})
            page.goto(url)
            page.wait_for_selector(".jp-NotebookPanel:visible .jp-Cell", timeout=60_000)
            _wait_kernels(api, 1)
            if enable is None:  # some memory in use, once (the kernel lives on across reloads)
                page.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first.click()
                page.keyboard.press("Shift+Enter")
            time.sleep(7)  # the indicator polls every 5 s
            found[label] = visible_memory(page)
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
    finally:
        context.close()
        api.request("PUT", _TOPBAR_SETTINGS, {"raw": "{}"})
        client.stop_server(user)
    return found


def measure(
    browser: Any,
    hub_url: str,
    token: str,
    user: str,
    interface: str,
    limit_bytes: int,
    *,
    screenshot: Path | None = None,
    patience: float = 120.0,
) -> dict[str, Any]:
    """One student, two notebooks, one cell past the limit: what the pages showed, and when.

    ``patience``: how long the student keeps trying to get the server back.
    """
    ui = INTERFACES[interface]
    client = HubClient(hub_url, token)
    api, _ = client.ensure_server(user)
    api.request("PUT", _NEWS_SETTINGS, {"raw": json.dumps(NO_NEWS)})
    over = limit_bytes * 3 // 2
    saved = {
        RUNS: _notebook([
            'results = "an hour of work"',
            f"data = bytearray({over // 2**20} * 2**20)  # half as much again as the limit",
            "print(results)",
        ]),
        OTHER: _notebook(["table = list(range(1000))"]),
    }  # fmt: skip
    stamps = {name: api.save_notebook(name, nb)["last_modified"] for name, nb in saved.items()}
    files = {name: _raw(api, name) for name in saved}  # the bytes on disk, to put back
    marks = {name: f"unsaved-{secrets.token_hex(3)}" for name in saved}
    base = f"{hub_url}/user/{urllib.parse.quote(user)}"

    context = browser.new_context(viewport={"width": 1100, "height": 620})
    try:
        page = context.new_page()
        login(page, hub_url, user)
        page.goto(base + ui.path.format(path=OTHER) + ("" if ui.two_tabs else "?reset"))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        tabs = {OTHER: page}  # notebook -> the browser tab it is open in
        _wait_kernels(api, 1)
        page.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")  # the other notebook holds a variable too
        edit_first_cell(page, marks[OTHER])
        if ui.two_tabs:
            page = context.new_page()
            page.goto(base + ui.path.format(path=RUNS))
        else:
            page.locator(".jp-DirListing-item", has_text=RUNS).dblclick()
        page.wait_for_selector(".jp-NotebookPanel:visible .jp-Cell", timeout=60_000)
        tabs[RUNS] = page
        kernels = _wait_kernels(api, 2)
        other_kernel = next(
            s["kernel"]["id"] for s in api.request("GET", "/api/sessions") if s["path"] == OTHER
        )
        edit_first_cell(page, marks[RUNS])
        page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(0).click()
        page.keyboard.press("Shift+Enter")  # results = ...
        time.sleep(1)
        indicator = visible_memory(page)
        record: dict[str, Any] = {
            "interface": ui.label,
            "notebooks_open": list(tabs),
            "browser_tabs": len({id(t) for t in tabs.values()}),
            "kernels_before": len(kernels),
            "memory_indicator_before": indicator,
        }

        # The cell past the limit; from here on every time is counted from this moment.
        shown_in = {(f"tab {n}" if ui.two_tabs else "JupyterLab"): t for n, t in tabs.items()}

        def noticed() -> None:  # what a reload and the hub's home page show from now on
            record["reload_after_hub_noticed"] = open_fresh(context, page.url, wait=1)
            record["hub_home_after_hub_noticed"] = open_fresh(context, home, wait=1)

        home = f"{hub_url}/hub/home"
        record["reload_after_hub_noticed"] = record["hub_home_after_hub_noticed"] = None
        watch = Observer(shown_in, lambda: _hub_server_gone(client, user), noticed)
        page.keyboard.press("Shift+Enter")
        watch.until(lambda: bool(_dialogs(watch)) or _server_gone(api), timeout=60)
        gone = watch.until(lambda: _server_gone(api), timeout=5)
        record["server_survived"] = gone is None
        record["seconds_until_server_gone"] = gone
        if gone is not None and watch.gone_at is None:  # before the hub can know
            record["reload_right_after_kill"] = open_fresh(context, page.url, wait=1)
        watch.until(lambda: bool(_dialogs(watch)), timeout=DIALOG_WAIT)
        record["dialog_wait_seconds"] = DIALOG_WAIT
        first = _dialogs(watch)
        record["seconds_until_first_dialog"] = first[0]["seconds"] if first else None
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        if gone is None:  # only the kernel died: the server and the other kernel live on
            watch.until(lambda: False, timeout=8)
            after = api.kernels()
            record["other_kernel_survived"] = any(k["id"] == other_kernel for k in after)
            record["kernels_after"] = len(after)
            record["status_bar_after"] = kernel_status(page)
            _finish(record, watch, tabs, marks, api)
            return record

        # Whether the hub still took the server for running when the student was told.
        record["hub_listed_server_at_first_dialog"] = (
            watch.gone_at is None or watch.gone_at > first[0]["seconds"] if first else None
        )
        record["dialogs_while_down"] = _dialogs(watch)
        record["edits_in_editor_while_down"] = {n: m in editors(tabs[n]) for n, m in marks.items()}
        record["status_bar_while_down"] = kernel_status(page)
        record["way_back"] = _come_back(context, watch, tabs, client, user, page.url, patience)
        log.info("way back: %s", record["way_back"])
        record["seconds_until_hub_noticed"] = watch.gone_at
        api = client.server_api(user)
        record["other_kernel_survived"] = api.kernel(other_kernel) is not None
        record["kernels_after"] = len(api.kernels())
        record["status_bar_after"] = kernel_status(page)
        # The new home is empty: a file here now was written by the page itself (autosave).
        record["edits_on_disk_when_back"] = _on_disk(api, marks)
        _restore_home(api, files, stamps)
        _finish(record, watch, tabs, marks, api)
        return record
    finally:
        context.close()


def _come_back(
    context: Any, watch: Observer, tabs: dict[str, Any], client: HubClient, user: str,
    url: str, patience: float,
) -> dict[str, Any]:  # fmt: skip
    """The student's way back, as a student takes it, every step with its time.

    The dialog's Restart button if one offers it, else the notebook's address
    opened again in a new tab; then, as long as no server runs, a reload of
    that tab every few seconds, and the hub's start button whenever one is shown.
    """
    steps: list[dict[str, Any]] = []
    by_itself: list[bool] = []  # at each start click: was a server running already?
    new_tabs: list[Any] = []
    context.on("page", lambda tab: new_tabs.append(tab))  # noqa: PLW0108  # Playwright tags the handler
    button = None
    for page in tabs.values():
        found = page.locator(".jp-Dialog .jp-Dialog-button", has_text="Restart")
        if found.count():
            button = found.first
            break
    if button is not None:
        steps.append({"seconds": watch.now(), "action": "clicks Restart in the dialog"})
        button.click()
        watch.until(lambda: bool(new_tabs), timeout=10)
    if new_tabs:
        tab = new_tabs[0]
    else:  # nothing to click: the student reloads (in a new tab here, keeping the edits)
        tab = context.new_page()
        steps.append({"seconds": watch.now(), "action": "opens the notebook's address again"})
        tab.goto(url)
    deadline = time.monotonic() + patience
    while not _ready(client, user) and time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a page mid-redirect: look again
            tab.wait_for_load_state("load", timeout=10_000)
        watch.until(lambda: False, timeout=2)
        view = {"seconds": watch.now(), "shows": page_view(tab, None)}
        if not steps or steps[-1].get("shows") != view["shows"]:
            steps.append(view)
        start = tab.locator("a#start")  # the hub's own start button, on either page
        if start.count() and not _ready(client, user):
            label = " ".join(start.first.inner_text().split())
            by_itself.append(_ready(client, user))
            steps.append({"seconds": watch.now(), "action": f"clicks {label}"})
            start.first.click()
            watch.until(lambda: _ready(client, user), timeout=60)
        elif not _ready(client, user):
            watch.until(lambda: False, timeout=3)
            steps.append({"seconds": watch.now(), "action": "reloads the page"})
            tab.reload()
    ready = watch.until(lambda: _ready(client, user), timeout=1)
    with contextlib.suppress(Exception):
        tab.wait_for_selector(".jp-Notebook, .jp-DirListing", timeout=30_000)
    steps.append({"seconds": watch.now(), "shows": page_view(tab, None)})
    return {
        "steps": steps,
        # None: the student never had to start it, so this run cannot tell.
        "hub_restarted_it_by_itself": any(by_itself) if by_itself else None,
        "seconds_until_server_ready": ready,
        "seconds_from_first_action_to_ready": round(ready - steps[0]["seconds"], 1)
        if ready is not None
        else None,
        "back_in": "a new browser tab" if tab not in tabs.values() else "the same tab",
    }


def _ready(client: HubClient, user: str) -> bool:
    """Whether the hub says the server is ready *and* it answers: the hub can be wrong."""
    try:
        server = _hub_server(client, user)
    except HubError:
        return False
    return bool(server and server.get("ready")) and not _server_gone(client.server_api(user))


def _raw(api: ServerAPI, name: str) -> str:
    model = api.request("GET", f"/api/contents/{name}?type=file&format=text&content=1")
    return str(model["content"])


def _restore_home(api: ServerAPI, files: dict[str, str], stamps: dict[str, str]) -> None:
    """Put the notebooks back as they were saved: the same bytes, the same modification time.

    The local hub's home is new at each start; a hub's volume keeps the files,
    untouched by the kill. A helper kernel sets the times (the contents API cannot).
    """
    for name, text in files.items():
        api.request(
            "PUT", f"/api/contents/{name}", {"type": "file", "format": "text", "content": text}
        )
        if _raw(api, name) != text:
            raise RuntimeError(f"{name} could not be put back as it was")
    times = {n: dt.datetime.fromisoformat(s).timestamp() for n, s in stamps.items()}
    kernel = api.start_kernel()
    sock = api.connect(kernel)
    try:
        sock.execute(f"import os\nfor n, t in {times!r}.items(): os.utime(n, (t, t))")
    finally:
        sock.close()
        api.delete_kernel(kernel)
    for name, stamp in stamps.items():
        now = api.request("GET", f"/api/contents/{name}?content=0")["last_modified"]
        if dt.datetime.fromisoformat(now) != dt.datetime.fromisoformat(stamp):
            raise RuntimeError(f"{name}: modified {now}, not {stamp} as saved")


def _finish(
    record: dict[str, Any], watch: Observer, tabs: dict[str, Any], marks: dict[str, str],
    api: ServerAPI,
) -> None:  # fmt: skip
    """The edits: still in the editors? Saved by themselves? Saved by Ctrl+S?"""
    watch.until(lambda: False, timeout=3)
    record["edits_in_editor_after"] = {n: m in editors(tabs[n]) for n, m in marks.items()}
    record["edits_on_disk_before_saving"] = _on_disk(api, marks)
    log.info("so far: %s", record)
    answers: list[dict[str, Any]] = []
    for name, page in tabs.items():
        page.bring_to_front()
        answer(page, watch, answers)
        tab = page.locator(".lm-TabBar-tab", has_text=name)
        if tab.count():
            tab.first.click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        watch.until(lambda: False, timeout=2)
        answer(page, watch, answers)
        watch.until(lambda: False, timeout=2)
    record["answers_while_saving"] = answers
    record["edits_on_disk_after_ctrl_s"] = _on_disk(api, marks)
    record["shown"] = watch.seen


def _on_disk(api: ServerAPI, marks: dict[str, str]) -> dict[str, bool | None]:
    """Whether each notebook's file holds its edit (None: the file is not there)."""
    found: dict[str, bool | None] = {}
    for name, mark in marks.items():
        try:
            model = api.request("GET", f"/api/contents/{name}?content=1")
        except ApiError:
            found[name] = None
            continue
        found[name] = mark in json.dumps(model["content"])
    return found
