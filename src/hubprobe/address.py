"""Where the guide is published: the one place its public address comes from.

The site's ``site_url`` (sitemap, canonical links) and the address the
out-of-memory notice points students to both come from :func:`site_url`:
``$HUBPROBE_SITE_URL`` when set (the Pages workflow sets it to the address
GitHub gives the repository), else :data:`DEFAULT_SITE_URL`.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

__all__ = ["DEFAULT_SITE_URL", "ENV_SITE_URL", "page_url", "site_url"]

#: The guide's address when nothing else is said: the GitHub Pages site of the
#: project's repository. A copy published elsewhere sets $HUBPROBE_SITE_URL.
DEFAULT_SITE_URL = "https://hubprobe.github.io/hubprobe/"
ENV_SITE_URL = "HUBPROBE_SITE_URL"


def site_url() -> str:
    """The guide's root URL, always ending in ``/``; ValueError if it is not http(s)."""
    url = os.environ.get(ENV_SITE_URL, "").strip() or DEFAULT_SITE_URL
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ValueError(
            f"{ENV_SITE_URL}={url!r} is not an http(s) address: set it to the URL the guide is"
            f" published at, for example {DEFAULT_SITE_URL}"
        )
    return url if url.endswith("/") else url + "/"


def page_url(path: str, root: str = DEFAULT_SITE_URL) -> str:
    """The full address of a page, e.g. ``page_url("explanation/silent-oom-kill/")``."""
    return root.rstrip("/") + "/" + path.lstrip("/")
