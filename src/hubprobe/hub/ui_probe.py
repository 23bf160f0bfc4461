"""What a student sees when a cell runs out of memory, measured in a real browser.

Headless Chromium (Playwright, imported lazily) logs in to a local hub
(:class:`~hubprobe.hub.local.LocalHub`), opens two notebooks in JupyterLab 4
or Notebook 7, leaves an unsaved edit in each, and runs a cell that
allocates half as much again as the limit. Everything the pages show from
then on is recorded with its time since the cell started: dialogs (title,
body, buttons), what a reload shows, what the hub's home page offers, and
whether the edits are still in the editors and can be saved once a server
runs again. The student's way back is taken as a student would: the
dialog's button if one offers it, else the hub's home page.

Nothing here decides what *should* happen: the record says what did, and
the guide quotes it (``<!-- ui: ... -->``, see :mod:`hubprobe.site.ui`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubprobe.hub.api import HubClient, HubError
from hubprobe.jupyter.api import ApiError, ServerAPI
from hubprobe.profiles import load_profile

__all__ = ["INTERFACES", "Interface", "Observer", "indicator", "measure", "write_profile"]

log = logging.getLogger(__name__)

#: JupyterLab's settings with the news question answered, so no pop-up covers the page.
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}
_NEWS_SETTINGS = "/lab/api/settings/@jupyterlab/apputils-extension:notification"
_TOPBAR_SETTINGS = "/lab/api/settings/@jupyter-server/resource-usage:topbar-item"
#: Every dialog and notification on a page: JupyterLab and Notebook 7 share these widgets.
_SHOWN_JS = """() => ({
  dialogs: Array.from(document.querySelectorAll('.jp-Dialog')).map(d => ({
    title: (d.querySelector('.jp-Dialog-header') || {}).innerText || '',
    body: (d.querySelector('.jp-Dialog-body') || {}).innerText || '',
    buttons: Array.from(d.querySelectorAll('.jp-Dialog-button')).map(b => b.innerText.trim()),
  })),
  toasts: Array.from(document.querySelectorAll('.Toastify__toast-body')).map(t => t.innerText),
})"""
_EDITORS_JS = "() => Array.from(document.querySelectorAll('.cm-content')).map(e => e.textContent)"


@dataclasses.dataclass(frozen=True)
class Interface:
    name: str  # as in a profile's [interface] default
    label: str
    path: str  # where a notebook opens, {path} the notebook's path
    two_tabs: bool  # each notebook in its own browser tab (Notebook 7), or one page (Lab)


INTERFACES = {
    "jupyterlab": Interface("jupyterlab", "JupyterLab 4", "/lab/tree/{path}", False),
    "notebook7": Interface("notebook7", "Notebook 7", "/notebooks/{path}", True),
}
RUNS, OTHER = "homework.ipynb", "analysis.ipynb"


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


class Observer:
    """Everything shown on a set of pages, each first sighting with its time since ``start``."""

    def __init__(self, pages: dict[str, Any], client: HubClient, user: str) -> None:
        self.start = time.monotonic()
        self.pages = pages
        self.seen: list[dict[str, Any]] = []
        self._keys: set[str] = set()
        self._client, self._user = client, user
        #: When the hub first listed no server for the user (it polls its spawners).
        self.hub_noticed: float | None = None

    def now(self) -> float:
        return round(time.monotonic() - self.start, 1)

    def look(self) -> None:
        if self.hub_noticed is None:
            with contextlib.suppress(HubError):
                if _hub_server(self._client, self._user) is None:
                    self.hub_noticed = self.now()
        for name, page in self.pages.items():
            try:
                shown = page.evaluate(_SHOWN_JS)
            except Exception:  # noqa: BLE001, S112  # a page mid-navigation: look again next time
                continue
            for kind in ("dialogs", "toasts"):
                for item in shown[kind]:
                    entry = {"page": name, "kind": kind[:-1], **_item(item)}
                    key = json.dumps(entry, sort_keys=True)
                    if key not in self._keys:
                        self._keys.add(key)
                        self.seen.append({"seconds": self.now(), **entry})
                        log.info("shown: %s", self.seen[-1])

    def until(self, done: Callable[[], bool], timeout: float, every: float = 0.25) -> float | None:
        """Look until ``done()``; the time it became true, or None at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self.look()
            if done():
                return self.now()
            if time.monotonic() > deadline:
                return None
            time.sleep(every)


def _item(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"text": item.strip()}
    return {
        "title": item["title"].strip(),
        "body": item["body"].strip(),
        "buttons": item["buttons"],
    }


def _server_gone(api: ServerAPI) -> bool:
    try:
        api.status()
    except (ApiError, OSError):
        return True
    return False


def _hub_server(client: HubClient, user: str) -> dict[str, Any] | None:
    server: dict[str, Any] | None = (client.user(user).get("servers") or {}).get("")
    return server


def _page_view(page: Any, response: Any) -> dict[str, Any]:
    """What a freshly loaded page shows: its HTTP status, title and visible text."""
    text = page.locator("body").inner_text(timeout=10_000)
    return {
        "status": response.status if response is not None else None,
        "path": urllib.parse.urlsplit(page.url).path,
        "title": page.title(),
        "text": " ".join(text.split())[:600],
    }


def _open_fresh(context: Any, url: str, wait: float = 3.0) -> dict[str, Any]:
    """A new tab at ``url`` (what a reload shows, keeping the student's tab as it is)."""
    page = context.new_page()
    try:
        response = page.goto(url, wait_until="load", timeout=30_000)
        time.sleep(wait)  # a single-page app draws after "load"
        return _page_view(page, response)
    finally:
        page.close()


def _wait_kernels(api: ServerAPI, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The server's kernels once ``count`` are idle and each has a browser connected."""
    deadline = time.monotonic() + timeout
    while True:
        kernels = api.kernels()
        ready = [k for k in kernels if k["execution_state"] == "idle" and k["connections"] >= 1]
        if len(ready) >= count:
            return kernels
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ready)} of {count} kernels ready: {kernels}")
        time.sleep(0.25)


def _visible_memory(page: Any) -> list[str]:
    """The memory figures a student can see (jupyter-resource-usage's), not hidden panels'."""
    found = page.locator("text=/Mem(ory)?: /")
    return [
        " ".join(found.nth(i).locator("xpath=..").inner_text().split())
        for i in range(found.count())
        if found.nth(i).is_visible()
    ]


#: The kernel's state as the page shows it: the toolbar's circle (its tooltip) and,
#: in JupyterLab, the status bar's "Python 3 (ipykernel) | Idle".
_KERNEL_JS = """() => ({
  toolbar: Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden)'
    + ' .jp-NotebookPanel-toolbar [title*="ernel"]')).map(e => e.getAttribute('title')),
  status_bar: Array.from(document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem'))
    .map(e => e.innerText.trim()).filter(s => s.includes(' | ')),
})"""


def _kernel_status(page: Any) -> dict[str, list[str]]:
    status: dict[str, list[str]] = page.evaluate(_KERNEL_JS)
    return status


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
        _login(page, hub_url, user)
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
            found[label] = _visible_memory(page)
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
    finally:
        context.close()
        api.request("PUT", _TOPBAR_SETTINGS, {"raw": "{}"})
        client.stop_server(user)
    return found


def _login(page: Any, hub_url: str, user: str) -> None:
    """The hub's login form (dummy authenticator: any password)."""
    page.goto(f"{hub_url}/hub/login", timeout=30_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "any")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("load")


def _editors(page: Any) -> str:
    return "\n".join(page.evaluate(_EDITORS_JS))


def _edit_first_cell(page: Any, marker: str) -> None:
    cell = page.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first
    cell.click()
    page.keyboard.press("End")
    page.keyboard.type(f"  # {marker}")
    page.keyboard.press("Escape")  # command mode, as after typing and clicking elsewhere


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
        _login(page, hub_url, user)
        page.goto(base + ui.path.format(path=OTHER) + ("" if ui.two_tabs else "?reset"))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        tabs = {OTHER: page}  # notebook -> the browser tab it is open in
        _wait_kernels(api, 1)
        page.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")  # the other notebook holds a variable too
        _edit_first_cell(page, marks[OTHER])
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
        _edit_first_cell(page, marks[RUNS])
        page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(0).click()
        page.keyboard.press("Shift+Enter")  # results = ...
        time.sleep(1)
        indicator = _visible_memory(page)
        record: dict[str, Any] = {
            "interface": ui.label,
            "notebooks_open": list(tabs),
            "browser_tabs": len({id(t) for t in tabs.values()}),
            "kernels_before": len(kernels),
            "memory_indicator_before": indicator,
        }

        # The cell past the limit; from here on every time is counted from this moment.
        shown_in = {(f"tab {n}" if ui.two_tabs else "JupyterLab"): t for n, t in tabs.items()}
        watch = Observer(shown_in, client, user)
        page.keyboard.press("Shift+Enter")
        watch.until(lambda: bool(watch.seen) or _server_gone(api), timeout=60)
        gone = watch.until(lambda: _server_gone(api), timeout=5)
        record["server_survived"] = gone is None
        record["seconds_until_server_gone"] = gone
        watch.until(lambda: bool(watch.seen), timeout=60)
        record["seconds_until_first_dialog"] = watch.seen[0]["seconds"] if watch.seen else None
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        if gone is None:  # only the kernel died: the server and the other kernel live on
            watch.until(lambda: False, timeout=8)
            after = api.kernels()
            record["other_kernel_survived"] = any(k["id"] == other_kernel for k in after)
            record["kernels_after"] = len(after)
            record["kernel_status_after"] = _kernel_status(page)
            _finish(record, watch, tabs, marks, api)
            return record

        record["hub_listed_server_at_first_dialog"] = _hub_server(client, user) is not None
        record["reload_at_first_dialog"] = _open_fresh(context, page.url)
        record["edits_in_editor_while_down"] = {n: m in _editors(tabs[n]) for n, m in marks.items()}
        record["kernel_status_while_down"] = _kernel_status(page)
        record["way_back"] = _come_back(context, watch, tabs, client, user, page.url, patience)
        log.info("way back: %s", record["way_back"])
        record["seconds_until_hub_noticed"] = watch.hub_noticed
        api = client.server_api(user)
        record["other_kernel_survived"] = api.kernel(other_kernel) is not None
        record["kernels_after"] = len(api.kernels())
        record["kernel_status_after"] = _kernel_status(page)
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

    The dialog's Restart button if one offers it, else the hub's home page;
    then, as long as no server runs, a reload of the tab that opened every
    few seconds, and the page's start button whenever one is shown.
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
    home: dict[str, Any] | None = None
    deadline = time.monotonic() + patience
    while not _ready(client, user) and time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a page mid-redirect: look again
            tab.wait_for_load_state("load", timeout=10_000)
        watch.until(lambda: False, timeout=2)
        if home is None and watch.hub_noticed is not None and not _ready(client, user):
            home = _open_fresh(context, f"{client.url}/hub/home", wait=1)
        view = {"seconds": watch.now(), "shows": _page_view(tab, None)}
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
    steps.append({"seconds": watch.now(), "shows": _page_view(tab, None)})
    return {
        "steps": steps,
        # None: the student never had to start it, so this run cannot tell.
        "hub_restarted_it_by_itself": any(by_itself) if by_itself else None,
        "hub_home_while_down": home,
        "seconds_until_server_ready": ready,
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
    record["edits_in_editor_after"] = {n: m in _editors(tabs[n]) for n, m in marks.items()}
    record["edits_on_disk_before_saving"] = _on_disk(api, marks)
    log.info("so far: %s", record)
    answers: list[dict[str, Any]] = []
    for name, page in tabs.items():
        page.bring_to_front()
        _answer(page, watch, answers)
        tab = page.locator(".lm-TabBar-tab", has_text=name)
        if tab.count():
            tab.first.click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        watch.until(lambda: False, timeout=2)
        _answer(page, watch, answers)
        watch.until(lambda: False, timeout=2)
    record["answers_while_saving"] = answers
    record["edits_on_disk_after_ctrl_s"] = _on_disk(api, marks)
    record["shown"] = watch.seen


#: What the student answers to a dialog once the server is back: keep their own version.
_CHOICES = ("Overwrite", "Dismiss", "Select", "Ok", "OK")


def _answer(page: Any, watch: Observer, answers: list[dict[str, Any]]) -> None:
    """Answer every dialog open on ``page`` as a student keeping their work would."""
    for _ in range(5):
        watch.look()
        dialog = page.locator(".jp-Dialog")
        if not dialog.count():
            return
        title = " ".join(dialog.first.locator(".jp-Dialog-header").inner_text().split())
        buttons = dialog.first.locator(".jp-Dialog-button")
        labels = [b.strip() for b in buttons.all_inner_texts()]
        choice = next((c for c in _CHOICES if c in labels), labels[-1] if labels else "")
        answers.append({"seconds": watch.now(), "dialog": title, "clicked": choice})
        if choice:
            buttons.nth(labels.index(choice)).click()
        else:
            page.keyboard.press("Escape")
        time.sleep(0.5)


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
