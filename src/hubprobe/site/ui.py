"""``<!-- ui: NAME.dotted.path -->``: what a real browser showed, quoted from ``probes/ui/``.

The UI probe (``tools/ui_probe.py``, :mod:`hubprobe.hub.ui_probe`) records what
JupyterLab and Notebook 7 show a student, in ``probes/ui/NAME.json``. A page
quotes a recorded value with the shortcode, never by typing it:
``<!-- ui: whole-server-kill.cases.jupyterlab.dialogs_while_down.0.title -->``.
List items are named by their index. Texts come out on one line (a dialog's
line breaks would end an admonition), HTML-escaped, in a span that says on
hover where and when it was measured.

:func:`ui_value` is pure; :func:`render_ui` replaces every shortcode in a page
and reports problems (an unknown file or path, a group rather than a value)
instead of raising, so the MkDocs hook can log them all and ``--strict`` fails.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubprobe.site.render import format_figure

__all__ = ["UI_SHORTCODE", "UiRefError", "load_ui", "render_ui", "ui_value"]

UI_SHORTCODE = re.compile(r"<!--\s*ui:\s*([A-Za-z0-9_.\-]+)\s*-->")


class UiRefError(LookupError):
    """A shortcode that names no recorded value; the message says what is there instead."""


def load_ui(folder: Path) -> dict[str, Any]:
    """Every ``*.json`` in ``folder``, by file name without the suffix; {} if there is none."""
    if not folder.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def _lookup(ref: str, data: Mapping[str, Any]) -> tuple[Any, str, Mapping[str, Any]]:
    """(the value, its last key, its file's data) at ``ref``."""
    name, _, path = ref.partition(".")
    if name not in data:
        known = ", ".join(sorted(data)) or "none: run tools/ui_probe.py"
        raise UiRefError(f"ui {ref}: no probes/ui/{name}.json (recorded: {known})")
    if not path:
        raise UiRefError(f"ui {ref}: name a value inside {name}, e.g. {name}.cases")
    value: Any = data[name]
    walked = name
    for key in path.split("."):
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            there = (
                ", ".join(map(str, value))
                if isinstance(value, Mapping)
                else f"{len(value)} items"
                if isinstance(value, list)
                else repr(value)
            )
            raise UiRefError(f"ui {ref}: {walked} has no {key!r} (it has: {there})")
        walked += f".{key}"
    if isinstance(value, Mapping) or (isinstance(value, list) and value and not _flat(value)):
        raise UiRefError(f"ui {ref}: a group of values, not one; name one of its parts")
    return value, path.rsplit(".", 1)[-1], data[name]


def _flat(items: list[Any]) -> bool:
    return all(not isinstance(i, Mapping | list) for i in items)


def ui_value(ref: str, data: Mapping[str, Any]) -> str:
    """The recorded value at ``ref`` as page HTML: one line, escaped, with its provenance.

    Sizes and times are written as the measured figures are (``format_figure``);
    raises :class:`UiRefError` when ``ref`` names no single value.
    """
    value, key, record = _lookup(ref, data)
    text = format_figure(key, value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    where = (
        f"measured in Chromium {record.get('chromium', '?')} on {str(record.get('date', '?'))[:10]}"
    )
    return (
        f'<span class="hp-ui" data-ui="{html.escape(ref)}" title="{html.escape(where)}">'
        f"{html.escape(text)}</span>"
    )


def render_ui(markdown: str, data: Mapping[str, Any], problems: list[str]) -> str:
    """Replace every ``ui`` shortcode; what cannot be replaced stays, and is in ``problems``."""

    def replace(m: re.Match[str]) -> str:
        try:
            return ui_value(m.group(1), data)
        except UiRefError as exc:
            problems.append(str(exc))
            return m.group(0)

    return UI_SHORTCODE.sub(replace, markdown)
