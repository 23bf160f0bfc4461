"""What a Jupyter page shows a student, read through Playwright (for the UI probe).

JupyterLab 4 and Notebook 7 share their dialogs, notifications and editors,
so one set of readers serves both: every dialog (title, body, buttons) with
the time it was first seen, a hub page's own words, the memory figure a
student can see, the kernel's state, the text in the editors. Playwright's
objects are passed in (typed ``Any``: it is imported only where a browser runs).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

__all__ = [
    "INTERFACES",
    "Interface",
    "Observer",
    "answer",
    "edit_first_cell",
    "editors",
    "kernel_status",
    "login",
    "open_fresh",
    "page_view",
    "visible_memory",
]

log = logging.getLogger(__name__)

#: Installed in a watched page: every dialog and notification, stamped (Date.now()) by the
#: page itself as it appears, so a busy probe cannot make a dialog look late.
#: JupyterLab and Notebook 7 share these widgets.
_WATCH_JS = """() => {
  if (window.__hubprobe) return;
  const seen = new Set(), found = [];
  window.__hubprobe = found;
  const add = (item) => {
    const key = JSON.stringify(item);
    if (!seen.has(key)) { seen.add(key); found.push({...item, at: Date.now()}); }
  };
  const scan = () => {
    for (const d of document.querySelectorAll('.jp-Dialog')) {
      const title = ((d.querySelector('.jp-Dialog-header') || {}).innerText || '').trim();
      const body = ((d.querySelector('.jp-Dialog-body') || {}).innerText || '').trim();
      const buttons = Array.from(d.querySelectorAll('.jp-Dialog-button'))
        .map(b => b.innerText.trim());
      // Complete ones only: Lumino fills a dialog's parts one after the other.
      if (title && buttons.length) add({kind: 'dialog', title, body, buttons});
    }
    for (const t of document.querySelectorAll('.Toastify__toast-body')) {
      if (t.innerText.trim()) add({kind: 'notification', text: t.innerText.trim()});
    }
  };
  new MutationObserver(scan).observe(document.body,
    {childList: true, subtree: true, characterData: true});
  scan();
}"""
#: A hub page's own words: its heading and the first text after it.
_HEADING_JS = """() => {
  const h = document.querySelector('h1');
  let n = h ? h.nextElementSibling : null;
  while (n && !n.innerText.trim()) n = n.nextElementSibling;
  return [h ? h.innerText : '', n ? n.innerText : ''];
}"""
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


class Observer:
    """Everything shown on a set of pages, each with its time since ``start`` (in seconds).

    ``gone``: polled at every look; the first time it is true is ``gone_at``
    (for the probe: the hub lists no server any more), and ``on_gone`` runs then.
    """

    def __init__(
        self,
        pages: dict[str, Any],
        gone: Callable[[], bool],
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        self.pages = pages
        for page in pages.values():
            page.evaluate(_WATCH_JS)
        self.start = time.monotonic()
        self._epoch = time.time()
        self.seen: list[dict[str, Any]] = []
        self._read = dict.fromkeys(pages, 0)
        self._gone, self._on_gone = gone, on_gone
        self.gone_at: float | None = None

    def now(self) -> float:
        return round(time.monotonic() - self.start, 1)

    def look(self) -> None:
        if self.gone_at is None and self._gone():
            self.gone_at = self.now()
            if self._on_gone is not None:
                self._on_gone()
        for name, page in self.pages.items():
            try:
                found = page.evaluate("() => window.__hubprobe || []")
            except Exception:  # noqa: BLE001, S112  # a page mid-navigation: look again next time
                continue
            for item in found[self._read[name] :]:
                at = item.pop("at") / 1000 - self._epoch
                self.seen.append({"seconds": round(at, 1), "page": name, **item})
                log.info("shown: %s", self.seen[-1])
            self._read[name] = len(found)
        self.seen.sort(key=lambda s: float(s["seconds"]))

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


def page_view(page: Any, response: Any) -> dict[str, Any]:
    """What a freshly loaded page shows: its HTTP status, title and visible text."""
    text = page.locator("body").inner_text(timeout=10_000)
    heading, message = page.evaluate(_HEADING_JS)
    return {
        "status": response.status if response is not None else None,
        "path": urllib.parse.urlsplit(page.url).path,
        "title": page.title(),
        "heading": " ".join(heading.split()),
        "message": " ".join(message.split()),
        "text": " ".join(text.split())[:600],
    }


def open_fresh(context: Any, url: str, wait: float = 3.0) -> dict[str, Any]:
    """A new tab at ``url`` (what a reload shows, keeping the student's tab as it is)."""
    page = context.new_page()
    try:
        response = page.goto(url, wait_until="load", timeout=30_000)
        time.sleep(wait)  # a single-page app draws after "load"
        return page_view(page, response)
    finally:
        page.close()


def visible_memory(page: Any) -> list[str]:
    """The memory figures a student can see (jupyter-resource-usage's), not hidden panels'."""
    found = page.locator("text=/Mem(ory)?: /")
    return [
        " ".join(found.nth(i).locator("xpath=..").inner_text().split())
        for i in range(found.count())
        if found.nth(i).is_visible()
    ]


#: The kernel's state as JupyterLab's status bar shows it ("Python 3 (ipykernel) | Idle");
#: Notebook 7 has no status bar, and its toolbar shows the state as an icon only.
_KERNEL_JS = """() => Array.from(
  document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem'))
  .map(e => e.innerText.trim()).filter(s => s.includes(' | '))"""


def kernel_status(page: Any) -> list[str]:
    status: list[str] = page.evaluate(_KERNEL_JS)
    return status


def login(page: Any, hub_url: str, user: str) -> None:
    """The hub's login form (dummy authenticator: any password)."""
    page.goto(f"{hub_url}/hub/login", timeout=30_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "any")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("load")


def editors(page: Any) -> str:
    return "\n".join(page.evaluate(_EDITORS_JS))


def edit_first_cell(page: Any, marker: str) -> None:
    cell = page.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first
    cell.click()
    page.keyboard.press("End")
    page.keyboard.type(f"  # {marker}")
    page.keyboard.press("Escape")  # command mode, as after typing and clicking elsewhere


#: What the student answers to a dialog once the server is back: keep their own version.
_CHOICES = ("Overwrite", "Dismiss", "Select", "Ok", "OK")


def answer(page: Any, watch: Observer, answers: list[dict[str, Any]]) -> None:
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
