"""Sessions: lint, tests, guide (the main job), docs, serve, screenshots, bench."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

# Material for MkDocs prints a banner about MkDocs 2 on every build.
QUIET_MKDOCS = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}

PYTHON = "3.11"
LINTED = ["src", "tests", "noxfile.py", "bench", "tools"]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) and mypy --strict on src."""
    session.install("-e", ".[test]", "ruff", "mypy", "nox")  # mypy sees every optional import
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, real sandbox tests included where a backend works (root here)."""
    session.install("-e", ".[test]")
    session.run("hubprobe", "doctor", success_codes=[0, 1])
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def guide(session: nox.Session) -> None:
    """The main job: run every probe in the sandbox, then build the verified site."""
    session.install("-e", ".[probes,docs]")
    session.run("hubprobe", "doctor")
    session.run("hubprobe", "probes", *session.posargs)
    _build_site(session)


def _build_site(session: nox.Session) -> None:
    session.run("mkdocs", "build", "--strict", env=QUIET_MKDOCS)
    session.run("python", "-m", "hubprobe.sitecheck", "site")
    session.log("the guide is in site/ (open site/index.html, or run `nox -s serve`)")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the site strictly from the committed results, then check links and anchors."""
    session.install("-e", ".[probes,docs]")
    _build_site(session)


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Serve the site on 127.0.0.1:8000 with live reload (interactive use)."""
    session.install("-e", ".[probes,docs]")
    session.run("mkdocs", "serve", "-a", "127.0.0.1:8000", env=QUIET_MKDOCS)


@nox.session(python=PYTHON)
def screenshots(session: nox.Session) -> None:
    """Real screenshots for the guide and README (headless Debian Chromium)."""
    session.install("-e", ".[probes,docs,browser]")
    _build_site(session)
    session.run("python", "tools/screenshots.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Figures: sandbox overhead, probe-suite wall times, site build time."""
    session.install("-e", ".[probes,docs]")
    session.run("python", "bench/sandbox_bench.py")
    session.run("python", "bench/probes_bench.py")
    session.run("python", "bench/site_bench.py")
    session.run("python", "bench/notice_bench.py")
    session.run("python", "bench/check_bench.py")
